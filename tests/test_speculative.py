"""Speculative decoding (chapter 11): the target's greedy output, whatever the draft guesses."""
import pytest

torch = pytest.importorskip("torch")
import quanta_tissu as qt  # noqa: E402
from quanta_tissu.gpt import GPT, GPTConfig  # noqa: E402
from quanta_tissu.inference import generate  # noqa: E402
from quanta_tissu.kv_cache import KVCache  # noqa: E402
from quanta_tissu.speculative import speculative_generate  # noqa: E402


@pytest.mark.parametrize("k", [1, 3, 6])
def test_speculative_output_is_the_targets_greedy_output(k):
    target, tok = qt.pretrained("shakespeare-llama", progress=False)
    draft, _ = qt.pretrained("shakespeare-llama-draft", progress=False)
    prompt = torch.as_tensor(tok.encode("ROMEO:\n"))[None]
    out, stats = speculative_generate(target, draft, prompt, 40, k=k)
    assert torch.equal(out, generate(target, prompt, 40, temperature=0, cache=True))
    assert stats["proposed"] == k * stats["rounds"] and 0 < stats["acceptance_rate"] <= 1


def test_a_random_draft_still_gives_the_targets_output():
    torch.manual_seed(0)
    cfg = GPTConfig.llama(vocab_size=40, block_size=64, n_layer=2, n_embd=32, n_head=4, n_kv_heads=2)
    target, draft = GPT(cfg).eval(), GPT(GPTConfig.llama(vocab_size=40, block_size=64, n_layer=1, n_embd=16, n_head=2)).eval()
    prompt = torch.randint(0, 40, (1, 5))
    out, stats = speculative_generate(target, draft, prompt, 30, k=4)
    assert torch.equal(out, generate(target, prompt, 30, temperature=0, cache=True))
    assert 0 <= stats["acceptance_rate"] <= 1


def test_bad_speculative_arguments():
    cfg = GPTConfig.llama(vocab_size=40, block_size=32, n_layer=1, n_embd=16, n_head=2)
    m = GPT(cfg)
    with pytest.raises(ValueError, match="one sequence"):
        speculative_generate(m, m, torch.zeros(2, 3, dtype=torch.long), 5)
    with pytest.raises(ValueError, match="does not fit"):
        speculative_generate(m, m, torch.zeros(1, 3, dtype=torch.long), 40)
    with pytest.raises(ValueError, match="k \\(tokens drafted per round\\) must be >= 1"):
        speculative_generate(m, m, torch.zeros(1, 3, dtype=torch.long), 5, k=0)
    cache = KVCache(cfg, 1, 8)
    with pytest.raises(ValueError, match="cannot truncate"):
        cache.truncate(3)


def test_windowed_models_are_refused_clearly():
    m = GPT(GPTConfig.llama(vocab_size=40, block_size=32, n_layer=1, n_embd=16, n_head=2, sliding_window=8))
    with pytest.raises(ValueError, match="without a sliding window"):
        speculative_generate(m, m, torch.zeros(1, 3, dtype=torch.long), 5)
    with pytest.raises(ValueError, match="unless a RoPE model has a sliding window"):
        KVCache(GPTConfig.tiny(block_size=16, sliding_window=4), 1, 40)
