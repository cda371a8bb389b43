"""Byte-level BPE: training parity with Hugging Face tokenizers, ids parity with tokenizers,
transformers and tiktoken, save/load, and clear errors."""
import json
import pytest
import regex

from quanta_tissu import bpe
from quanta_tissu.bpe import BasicBPE, RegexBPE, TokenizerError

HARD_TEXTS = [
    "Hello 👋 world! 🇫🇷 👨‍👩‍👧",  # emoji, flags, ZWJ sequences
    "你好，世界。日本語のテキスト",  # CJK
    "e\u0301 n\u0303 caf\u00e9 \u0915\u094d\u0937",  # combining marks
    "\x00\x01\x07\t\x1b[0m\r\n\x7f",  # control characters
    "a" + " " * 40 + "b\n\n\n\n\t\t  \n",  # long whitespace runs
    "def f(x):\n    return {'k': x**2}  # code\n\tif x != 3.14: pass\n",
    "I'm you'LL THEY'RE don't 1234567 3.14159",
]


def hf_trained(text, vocab_size, pattern):
    tokenizers = pytest.importorskip("tokenizers")
    from tokenizers import pre_tokenizers

    tok = tokenizers.Tokenizer(tokenizers.models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(tokenizers.Regex(pattern), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    trainer = tokenizers.trainers.BpeTrainer(vocab_size=vocab_size, show_progress=False,
                                             initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator([text], trainer)
    u2b = {c: b for b, c in bpe.bytes_to_unicode().items()}
    as_bytes = lambda s: bytes(u2b[c] for c in s)  # noqa: E731
    return [(as_bytes(a), as_bytes(b)) for a, b in json.loads(tok.to_str())["model"]["merges"]]


def our_merges_as_bytes(tok):
    return [(tok.vocab[a], tok.vocab[b]) for a, b in tok.merges]


@pytest.fixture(scope="module")
def trained(shakespeare_text):
    return RegexBPE("gpt4", special_tokens=["<|endoftext|>"]).train(shakespeare_text, 1024, tie="hf")


@pytest.mark.parametrize("pattern", ["gpt2", "gpt4"])
def test_training_matches_hf_merge_for_merge(shakespeare_text, pattern):
    text = shakespeare_text[:200_000] + "".join(HARD_TEXTS) * 20
    ours = RegexBPE(pattern).train(text, 700, tie="hf")
    assert our_merges_as_bytes(ours) == hf_trained(text, 700, bpe.PATTERNS[pattern])


def test_training_matches_hf_on_full_corpus(trained, shakespeare_text):
    hf = hf_trained(shakespeare_text, 1023, bpe.GPT4_SPLIT_PATTERN)  # ours has 1 special token on top
    assert our_merges_as_bytes(trained) == hf


def test_fast_equals_naive_for_both_tie_rules():
    text = "".join(HARD_TEXTS) * 3 + "the cat sat on the mat; the rat sat flat. " * 5
    for tie in ("first", "hf"):
        fast = RegexBPE("gpt4").train(text, 330, tie=tie, algorithm="fast")
        naive = RegexBPE("gpt4").train(text, 330, tie=tie, algorithm="naive")
        assert fast.merges == naive.merges, tie
    basic_fast = BasicBPE().train(text, 300, algorithm="fast")
    basic_naive = BasicBPE().train(text, 300, algorithm="naive")
    assert basic_fast.merges == basic_naive.merges


def test_first_seen_rule_is_minbpe_s():
    # On "abab cdcd" every pair count ties at first; minbpe takes the first pair seen: (a, b).
    tok = BasicBPE().train("abcd", 257, tie="first")
    assert list(tok.merges) == [(ord("a"), ord("b"))]
    tok = BasicBPE().train("cdab", 257, tie="first")
    assert list(tok.merges) == [(ord("c"), ord("d"))]
    tok = BasicBPE().train("cdab", 257, tie="hf")  # Hugging Face: the smallest pair of ids
    assert list(tok.merges) == [(ord("a"), ord("b"))]


def test_duplicate_spellings_reuse_the_id():
    tok = BasicBPE()
    tok._set_merges([((97, 98), 256), ((256, 99), 257), ((98, 99), 258), ((97, 258), 257)], "hf")
    assert tok.vocab[257] == b"abc" and len(set(tok.vocab.values())) == len(tok.vocab)


@pytest.mark.parametrize("text", HARD_TEXTS)
def test_ids_match_tokenizers_transformers_and_tiktoken(trained, tmp_path_factory, text):
    tokenizers = pytest.importorskip("tokenizers")
    tiktoken = pytest.importorskip("tiktoken")
    folder = tmp_path_factory.mktemp("hf")
    trained.save_hf(folder)
    ours = trained.encode(text)
    assert tokenizers.Tokenizer.from_file(str(folder / "tokenizer.json")).encode(text).ids == ours
    assert trained.to_tiktoken().encode_ordinary(text) == ours
    transformers = pytest.importorskip("transformers")
    fast = transformers.PreTrainedTokenizerFast(tokenizer_file=str(folder / "tokenizer.json"))
    assert fast(text)["input_ids"] == ours
    assert trained.decode(ours) == text == fast.decode(ours)
    assert isinstance(tiktoken.Encoding, type)


def test_ids_match_on_the_whole_corpus(trained, shakespeare_text, tmp_path):
    tokenizers = pytest.importorskip("tokenizers")
    trained.save_hf(tmp_path)
    hf = tokenizers.Tokenizer.from_file(str(tmp_path / "tokenizer.json"))
    lines = shakespeare_text.splitlines(keepends=True)[:5000]
    assert [e.ids for e in hf.encode_batch(lines)] == [trained.encode(line) for line in lines]
    assert trained.to_tiktoken().encode_ordinary(shakespeare_text) == trained.encode(shakespeare_text)


def test_special_tokens(trained):
    eot = trained.special_tokens["<|endoftext|>"]
    assert eot == 1023 and trained.vocab_size == 1024
    with pytest.raises(TokenizerError, match="allowed_special"):
        trained.encode("end<|endoftext|>")
    ids = trained.encode("end<|endoftext|>start", allowed_special="all")
    assert eot in ids and trained.decode(ids) == "end<|endoftext|>start"
    assert eot not in trained.encode_ordinary("<|endoftext|>")
    assert ids == trained.to_tiktoken().encode("end<|endoftext|>start", allowed_special="all")
    with pytest.raises(TokenizerError, match="unregistered"):
        trained.encode("x", allowed_special={"<|nope|>"})


def test_decode_never_raises_on_partial_utf8(trained):
    emoji = trained.encode("👋")
    assert len(emoji) > 1
    assert trained.decode(emoji[:1]) == "\ufffd" * len(trained.decode(emoji[:1]))
    assert trained.decode(emoji) == "👋"


def test_save_load_round_trip(trained, tmp_path):
    path = trained.save(tmp_path)
    again = BasicBPE.load(tmp_path)
    assert path.name == "tokenizer.qt.json" and isinstance(again, RegexBPE)
    assert again.merges == trained.merges and again.special_tokens == trained.special_tokens
    assert again.encode("To be, or not to be") == trained.encode("To be, or not to be")
    assert json.loads(path.read_text())["tokens"]["256"]  # readable


def test_bad_input_gets_clear_errors(trained, tmp_path):
    with pytest.raises(TokenizerError, match="256 bytes \\+ 1 special tokens = 257"):
        RegexBPE(special_tokens=["<|x|>"]).train("some text", 256)
    with pytest.raises(TokenizerError, match="expected text as a str"):
        trained.encode(b"bytes")
    with pytest.raises(TokenizerError, match="outside the vocabulary"):
        trained.decode([5, 1024])
    with pytest.raises(TokenizerError, match="no tokenizer file"):
        BasicBPE.load(tmp_path / "missing")
    broken = tmp_path / "broken.json"
    broken.write_text(trained.save(tmp_path / "ok.json").read_text()[:500])
    with pytest.raises(TokenizerError, match="not a valid tokenizer file"):
        BasicBPE.load(broken)
    with pytest.raises(TokenizerError, match="tie must be"):
        RegexBPE().train("abc", 300, tie="random")
    with pytest.raises(TokenizerError, match="invalid split pattern"):
        RegexBPE("(unclosed")


def test_cli_train_and_encode(tmp_path, capsys):
    from quanta_tissu.__main__ import main

    corpus = tmp_path / "c.txt"
    corpus.write_text("the theme of the thesis " * 50)
    assert main(["tokenizer", "train", "--input", str(corpus), "--vocab-size", "270", "--out", str(tmp_path / "t")]) == 0
    assert main(["tokenizer", "encode", "--tokenizer", str(tmp_path / "t"), "--text", "the thesis"]) == 0
    assert "tokens" in capsys.readouterr().out
    assert main(["tokenizer", "encode", "--tokenizer", str(tmp_path / "nope"), "--text", "x"]) == 2
    assert "no tokenizer file" in capsys.readouterr().err


def test_pair_counts_and_merge_helpers():
    assert bpe.get_pair_counts([1, 1, 1, 2]) == {(1, 1): 2, (1, 2): 1}
    assert bpe.merge([1, 1, 1, 2], (1, 1), 9) == [9, 1, 2]
    assert sorted(bpe.hf_byte_ranks()) == list(range(256))
    assert regex.findall(bpe.GPT4_SPLIT_PATTERN, "Hi  there, 12345!\n") == ["Hi", " ", " there", ",", " ", "123", "45", "!\n"]
