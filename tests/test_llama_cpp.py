"""llama.cpp runs the course's GGUF files (chapter 18). Skipped unless llama.cpp's programs are found
(``QUANTA_TISSU_LLAMA_CPP`` or the PATH): llama.cpp builds from source in tens of minutes, so CI never has it;
benchmarks/README.md records what these checks gave where it was built."""
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("gguf")
import quanta_tissu as qt  # noqa: E402
from quanta_tissu.bpe import RegexBPE  # noqa: E402
from quanta_tissu.gpt import GPT, GPTConfig  # noqa: E402
from quanta_tissu.interop import llama_cpp  # noqa: E402
from quanta_tissu.interop.gguf_export import save_gguf  # noqa: E402

needs_llama_cpp = pytest.mark.skipif(not llama_cpp.available(), reason="llama.cpp's programs are not installed")

TEXT = ("First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\nSpeak, speak.\n\n"
        "First Citizen:\nYou are all resolved rather to die than to famish?\n") * 20
SPECIALS = ["<|bos|>", "<|end|>", "<|user|>", "<|assistant|>"]


@pytest.fixture(scope="module")
def bpe_model():
    tok = RegexBPE("gpt4", special_tokens=SPECIALS).train(TEXT, 256 + 60 + len(SPECIALS), tie="hf")
    torch.manual_seed(0)
    model = GPT(GPTConfig.llama(vocab_size=tok.vocab_size, n_embd=64, n_head=4, n_kv_heads=2, n_layer=2, d_ff=128,
                                block_size=64, tie_weights=False)).eval()
    with torch.no_grad():
        model.lm_head.weight.mul_(3)  # logits far apart: no near-ties between two implementations' rounding
    return model, tok


@needs_llama_cpp
def test_llama_cpp_tokenizes_as_we_do(bpe_model, tmp_path):
    model, tok = bpe_model
    path = save_gguf(model, tmp_path / "m.gguf", "f32", tokenizer=tok)
    for text in ["First Citizen:\nYou are", "naïve café — 東京 🙂\n\n  speak", "<|user|>hear me<|end|>"]:
        assert llama_cpp.tokenize(path, text) == tok.encode(text, allowed_special="all"), text


@needs_llama_cpp
@pytest.mark.parametrize("prompt", ["First Citizen:\n", "Speak, speak", "naïve café 🙂 "])
def test_llama_cpp_float32_greedy_text_is_ours(bpe_model, tmp_path, prompt):
    model, tok = bpe_model
    path = save_gguf(model, tmp_path / "m.gguf", "f32", tokenizer=tok)
    n = 30
    ours = qt.generate(model, prompt, n, tok, temperature=0, stop=[tok.special_tokens["<|end|>"]])
    assert llama_cpp.greedy(path, prompt, n) == ours


@needs_llama_cpp
def test_llama_cpp_runs_the_course_character_checkpoint(tmp_path):
    model, tok = qt.pretrained("shakespeare-llama", progress=False)
    path = save_gguf(model, tmp_path / "course.gguf", "f32", tokenizer=tok)
    assert llama_cpp.tokenize(path, "ROMEO:\n") == tok.encode("ROMEO:\n").tolist()
    assert llama_cpp.greedy(path, "ROMEO:\n", 50) == qt.generate(model, "ROMEO:\n", 50, tok, temperature=0)


@needs_llama_cpp
def test_llama_cpp_runs_the_course_bpe_checkpoint(tmp_path):
    model, tok = qt.pretrained("shakespeare-bpe", progress=False)
    path = save_gguf(model, tmp_path / "base.gguf", "f32", tokenizer=tok)
    probe = "Roméo, 你好 🌹<|user|>"
    assert llama_cpp.tokenize(path, probe) == tok.encode(probe, allowed_special="all")
    for prompt in ["ROMEO:\n", "KING HENRY:\nWhat say you"]:
        ours = qt.generate(model, prompt, 100, tok, temperature=0, stop=[tok.special_tokens["<|end|>"]])
        assert llama_cpp.greedy(path, prompt, 100) == ours, prompt


def test_missing_programs_are_named(monkeypatch, tmp_path):
    monkeypatch.setenv("QUANTA_TISSU_LLAMA_CPP", str(tmp_path))
    assert not llama_cpp.available()
    with pytest.raises(FileNotFoundError, match="llama-simple not found.*QUANTA_TISSU_LLAMA_CPP"):
        llama_cpp.greedy(tmp_path / "m.gguf", "x", 1)
