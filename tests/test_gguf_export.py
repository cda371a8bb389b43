"""Chapter 14: the course's Llama as a GGUF file, checked with the gguf package's own reader and quantizers."""
import numpy as np
import pytest
import torch

from quanta_tissu.gpt import GPT, GPTConfig
from quanta_tissu.quantize import dequantize_q4_0, dequantize_q8_0, q4_0, q8_0
from quanta_tissu.rope import half_to_interleaved, interleaved_to_half

gguf = pytest.importorskip("gguf")
from quanta_tissu.interop.gguf_export import load_gguf, save_gguf  # noqa: E402

CFG = dict(vocab_size=40, block_size=32, n_layer=2, n_embd=64, n_head=4, n_kv_heads=2, d_ff=128)


def _model(**overrides):
    torch.manual_seed(0)
    return GPT(GPTConfig.llama(**{**CFG, **overrides})).eval()


def test_half_to_interleaved_inverts_interleaved_to_half():
    w = torch.randn(4 * 16, 24)
    assert torch.equal(interleaved_to_half(half_to_interleaved(w, 4), 4), w)
    head = half_to_interleaved(torch.arange(8.0)[:, None], 1)[:, 0]  # one head, D = 8: halves -> pairs
    assert head.tolist() == [0, 4, 1, 5, 2, 6, 3, 7]


@pytest.mark.parametrize("quant", ["q8_0", "q4_0"])
def test_blocks_and_metadata_are_what_gguf_reads(tmp_path, quant):
    model = _model()
    path = save_gguf(model, tmp_path / "m.gguf", quant)
    reader = gguf.GGUFReader(str(path))
    meta = {f.name: f.contents() for f in reader.fields.values()}
    assert meta["general.architecture"] == "llama"
    assert (meta["llama.block_count"], meta["llama.embedding_length"], meta["llama.attention.head_count_kv"],
            meta["llama.feed_forward_length"], meta["llama.context_length"]) == (2, 64, 2, 128, 32)
    tensors = {t.name: t for t in reader.tensors}
    assert "output.weight" not in tensors  # tied: llama.cpp reads the embedding instead
    qkv = model.blocks[1].attn.qkv.weight.detach()
    k = half_to_interleaved(qkv[64:96], 2)  # rows of block 1's key projection, in llama.cpp's order
    kind = getattr(gguf.GGMLQuantizationType, quant.upper())
    reference = gguf.quants.quantize(k.numpy(), kind)
    assert np.array_equal(np.array(tensors["blk.1.attn_k.weight"].data), reference)  # byte for byte
    assert tensors["blk.1.attn_k.weight"].tensor_type == kind
    assert tensors["blk.0.attn_norm.weight"].tensor_type == gguf.GGMLQuantizationType.F32


@pytest.mark.parametrize("quant", ["q8_0", "q4_0", "f32"])
def test_read_back_model_equals_the_quantized_one(tmp_path, quant):
    model = _model()
    idx = torch.randint(0, 40, (2, 32))
    back = load_gguf(save_gguf(model, tmp_path / "m.gguf", quant))
    expected = _model()
    if quant != "f32":  # every projection rounded to the format's blocks, nothing else
        codec = {"q8_0": (q8_0, dequantize_q8_0), "q4_0": (q4_0, dequantize_q4_0)}[quant]
        with torch.no_grad():
            for name, p in expected.named_parameters():
                if name.startswith("blocks.") and p.dim() == 2:
                    p.copy_(codec[1](codec[0](p)))
    with torch.no_grad():
        assert (back(idx)[0] - expected(idx)[0]).abs().max() < 1e-5
    assert back.cfg == model.cfg


def test_untied_head_is_written_and_read(tmp_path):
    model = _model(tie_weights=False)
    back = load_gguf(save_gguf(model, tmp_path / "m.gguf", "f32"))
    assert not back.cfg.tie_weights and torch.equal(back.lm_head.weight, model.lm_head.weight)


def test_bad_input_is_named(tmp_path):
    with pytest.raises(ValueError, match="quant must be one of"):
        save_gguf(_model(), tmp_path / "m.gguf", "q5_k")
    with pytest.raises(ValueError, match="only the Llama configuration"):
        save_gguf(GPT(GPTConfig.tiny()), tmp_path / "m.gguf")
    with pytest.raises(ValueError, match="multiples of 32"):
        save_gguf(_model(d_ff=120), tmp_path / "m.gguf")
    with pytest.raises(FileNotFoundError, match="no GGUF file"):
        load_gguf(tmp_path / "absent.gguf")
    (tmp_path / "junk.gguf").write_bytes(b"not a gguf file at all" * 10)
    with pytest.raises(ValueError, match="not a readable GGUF file"):
        load_gguf(tmp_path / "junk.gguf")


# -- the tokenizer inside the file (chapter 18) ----------------------------------------------------------------------
TEXT = "First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\nSpeak, speak.\n" * 30


def _bpe():
    from quanta_tissu.bpe import RegexBPE

    return RegexBPE("gpt4", special_tokens=["<|bos|>", "<|end|>"]).train(TEXT, 256 + 30 + 2, tie="hf")


def test_tokenizer_metadata_is_what_llama_cpp_reads(tmp_path):
    tok = _bpe()
    path = save_gguf(_model(vocab_size=tok.vocab_size), tmp_path / "m.gguf", "q8_0", tokenizer=tok)
    meta = {f.name: f.contents() for f in gguf.GGUFReader(str(path)).fields.values()}
    assert meta["tokenizer.ggml.model"] == "gpt2" and meta["tokenizer.ggml.pre"] == "llama-bpe"
    assert len(meta["tokenizer.ggml.tokens"]) == tok.vocab_size and meta["tokenizer.ggml.tokens"][32] == "Ġ"
    assert len(meta["tokenizer.ggml.merges"]) == len(tok.merges) and meta["tokenizer.ggml.add_bos_token"] is False
    assert meta["tokenizer.ggml.eos_token_id"] == tok.special_tokens["<|end|>"]
    assert [i for i, t in enumerate(meta["tokenizer.ggml.token_type"]) if t == 3] == sorted(tok.special_tokens.values())
    model, back = load_gguf(path, with_tokenizer=True)
    assert back.merges == tok.merges and back.special_tokens == tok.special_tokens and back.pattern == tok.pattern


def test_character_tokenizer_is_written_with_one_merge_that_never_applies(tmp_path):
    from quanta_tissu.tokenizer import CharTokenizer

    tok = CharTokenizer.from_text(TEXT)
    path = save_gguf(_model(vocab_size=tok.vocab_size), tmp_path / "m.gguf", "f32", tokenizer=tok)
    meta = {f.name: f.contents() for f in gguf.GGUFReader(str(path)).fields.values()}
    assert meta["tokenizer.ggml.merges"] == ["ÿ ÿ"]  # the writer would drop an empty array, llama.cpp needs one
    assert meta["tokenizer.ggml.tokens"][:3] == ["Ċ", "Ġ", ","]  # "\n", " ", ",": GPT-2's spelling of the bytes
    _, back = load_gguf(path, with_tokenizer=True)
    assert back.chars == tok.chars


def test_tokenizer_that_does_not_fit_is_refused(tmp_path):
    with pytest.raises(ValueError, match="the tokenizer has 288 tokens but the model's vocab_size is 40"):
        save_gguf(_model(), tmp_path / "m.gguf", tokenizer=_bpe())
    with pytest.raises(ValueError, match="only byte-level BPE"):
        load_gguf(save_gguf(_model(), tmp_path / "bare.gguf"), with_tokenizer=True)
