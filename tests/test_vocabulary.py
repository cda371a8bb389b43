"""Tokenizers exported whole (chapter 18): tokenizer.json, transformers folders and GGUF tokenizer metadata."""
import json

import pytest
import torch

import quanta_tissu as qt
from quanta_tissu.bpe import RegexBPE, TokenizerError, bytes_to_unicode
from quanta_tissu.gpt import GPT, GPTConfig
from quanta_tissu.interop import hf_llama
from quanta_tissu.tokenizer import CharTokenizer
from quanta_tissu.vocabulary import Vocabulary, tokenizer_from_hf

transformers = pytest.importorskip("transformers")

TEXT = ("First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\nSpeak, speak.\n\n"
        "First Citizen:\nYou are all resolved rather to die than to famish?\n") * 20
SPECIALS = ["<|bos|>", "<|end|>", "<|user|>", "<|assistant|>"]
SCALE = 3  # logits far apart: no near-ties between two implementations' rounding
PROMPTS = ["First Citizen:\n", "Speak, speak", "You are", "hear me\n\n", "naïve café — 東京 🙂 "]  # the last: never seen


@pytest.fixture(scope="module")
def bpe():
    return RegexBPE("gpt4", special_tokens=SPECIALS).train(TEXT, 256 + 60 + len(SPECIALS), tie="hf")


def _model(vocab_size, seed=0):
    torch.manual_seed(seed)
    cfg = GPTConfig.llama(vocab_size=vocab_size, n_embd=48, n_head=6, n_kv_heads=2, n_layer=2, d_ff=96, block_size=64,
                          tie_weights=False)  # a tied random model repeats its last token
    model = GPT(cfg).eval()
    with torch.no_grad():  # a random model whose greedy choices are far from ties
        model.lm_head.weight.mul_(SCALE)
    return model


def test_bpe_vocabulary_is_bytes_merges_then_specials(bpe):
    vocab = Vocabulary.of(bpe)
    assert len(vocab) == bpe.vocab_size and vocab.tokens[:256] == [bytes([b]) for b in range(256)]
    assert vocab.merges == list(bpe.merges) and vocab.tokens[256] == bpe.vocab[vocab.merges[0][0]] + bpe.vocab[
        vocab.merges[0][1]]
    assert vocab.roles == {"bos": bpe.special_tokens["<|bos|>"], "eos": bpe.special_tokens["<|end|>"],
                           "pad": bpe.special_tokens["<|end|>"]}
    assert vocab.spelled(32) == "Ġ" and vocab.spelled(10) == "Ċ" and vocab.spelled(vocab.roles["bos"]) == "<|bos|>"


def test_character_vocabulary_is_bpe_without_merges():
    tok = CharTokenizer.from_text(TEXT)
    vocab = Vocabulary.of(tok)
    assert vocab.merges == [] and vocab.tokens == [c.encode() for c in tok.chars] and vocab.roles == {}
    with pytest.raises(TokenizerError, match="more than one UTF-8 byte.*'é'"):
        Vocabulary.of(CharTokenizer.from_text("café"))
    with pytest.raises(TokenizerError, match="expected a CharTokenizer, BasicBPE or RegexBPE"):
        Vocabulary.of("abc")


def test_tokenizer_json_reads_back_exactly(bpe, tmp_path):
    back = tokenizer_from_hf(bpe.to_hf_json())
    assert isinstance(back, RegexBPE) and back.merges == bpe.merges and back.special_tokens == bpe.special_tokens
    assert back.pattern == bpe.pattern
    chars = CharTokenizer.from_text(TEXT)
    back = tokenizer_from_hf(Vocabulary.of(chars).hf_tokenizer_json())
    assert isinstance(back, CharTokenizer) and back.chars == chars.chars


def test_tokenizer_json_in_the_wrong_order_is_named(bpe):
    data = bpe.to_hf_json()
    merges = data["model"]["merges"]
    data["model"]["merges"] = [merges[1], merges[0], *merges[2:]]
    with pytest.raises(TokenizerError, match="not in rank order"):
        tokenizer_from_hf(data)
    with pytest.raises(TokenizerError, match="not a byte-level BPE tokenizer.json"):
        tokenizer_from_hf({"model": {"type": "WordPiece"}})


@pytest.mark.parametrize("kind", ["bpe", "char"])
def test_transformers_runs_the_folder_with_the_same_greedy_text(bpe, kind, tmp_path):
    tok = bpe if kind == "bpe" else CharTokenizer.from_text(TEXT)
    prompts = PROMPTS if kind == "bpe" else PROMPTS[:4]  # a character vocabulary has no bytes for new characters
    model = _model(tok.vocab_size)
    qt.save_hf(model, tmp_path, tokenizer=tok)
    theirs_tok = transformers.AutoTokenizer.from_pretrained(tmp_path)
    for p in prompts:
        assert theirs_tok(p)["input_ids"] == list(tok.encode(p)), p
    if kind == "bpe":  # the special tokens are whole tokens in their tokenizer, as with allowed_special="all"
        text = "<|user|>hear me<|end|>"
        assert theirs_tok(text)["input_ids"] == tok.encode(text, allowed_special="all")
    pipe = transformers.pipeline("text-generation", model=str(tmp_path), device="cpu")
    for p in prompts:
        ours = qt.generate(model, p, 20, tok, temperature=0)
        # the pipeline drops special tokens from its text by default; qt.generate's text keeps them
        out = pipe(p, max_new_tokens=20, do_sample=False, return_full_text=False,
                   skip_special_tokens=False)[0]["generated_text"]
        assert out == ours, p


def test_folder_reads_back_with_its_tokenizer(bpe, tmp_path):
    model = _model(bpe.vocab_size)
    qt.save_hf(model, tmp_path, tokenizer=bpe)
    config = json.loads((tmp_path / "tokenizer_config.json").read_text())
    assert config["bos_token"] == "<|bos|>" and config["eos_token"] == "<|end|>" and config["add_bos_token"] is False
    generation = json.loads((tmp_path / "generation_config.json").read_text())
    assert generation["eos_token_id"] == bpe.special_tokens["<|end|>"]
    back, tok = qt.load_hf(tmp_path, with_tokenizer=True)
    assert tok.merges == bpe.merges and tok.special_tokens == bpe.special_tokens
    assert torch.equal(back.wte.weight, model.wte.weight)
    assert isinstance(qt.load_hf(tmp_path), GPT)  # without the flag: the model alone, as before


def test_tokenizer_that_does_not_fit_the_model_is_refused(bpe, tmp_path):
    with pytest.raises(ValueError, match=f"the tokenizer has {bpe.vocab_size} tokens but the model's vocab_size is 61"):
        qt.save_hf(_model(61), tmp_path / "bad", tokenizer=bpe)
    assert not (tmp_path / "bad").exists()  # checked before anything is written
    qt.save_hf(_model(bpe.vocab_size), tmp_path / "no-tok")
    with pytest.raises(FileNotFoundError, match="tokenizer.json"):
        qt.load_hf(tmp_path / "no-tok", with_tokenizer=True)


def test_gguf_tokenizer_fields(bpe):
    fields = Vocabulary.of(bpe).gguf_tokenizer()
    assert fields["tokenizer.ggml.model"] == "gpt2" and fields["tokenizer.ggml.pre"] == "llama-bpe"
    tokens, types = fields["tokenizer.ggml.tokens"], fields["tokenizer.ggml.token_type"]
    assert len(tokens) == len(types) == bpe.vocab_size and tokens[32] == "Ġ"
    assert [i for i, t in enumerate(types) if t == 3] == sorted(bpe.special_tokens.values())
    b2u = bytes_to_unicode()
    first = next(iter(bpe.merges))
    assert fields["tokenizer.ggml.merges"][0] == " ".join("".join(b2u[b] for b in bpe.vocab[i]) for i in first)
    assert fields["tokenizer.ggml.bos_token_id"] == bpe.special_tokens["<|bos|>"]
    chars = Vocabulary.of(CharTokenizer.from_text(TEXT)).gguf_tokenizer()
    assert chars["tokenizer.ggml.merges"] == ["ÿ ÿ"] and chars["tokenizer.ggml.pre"] == "default"
    with pytest.raises(TokenizerError, match="pre-tokenizers"):
        Vocabulary.of(qt.bpe.BasicBPE().train(TEXT, 300)).gguf_tokenizer()
