"""Sliding-window attention (chapter 11): a banded mask in training, a rolling cache in decoding."""
import pytest

torch = pytest.importorskip("torch")
from quanta_tissu.attention import Attention, repeat_kv  # noqa: E402
from quanta_tissu.gpt import GPT, GPTConfig  # noqa: E402
from quanta_tissu.inference import generate  # noqa: E402
from quanta_tissu.kv_cache import KVCache  # noqa: E402


def windowed(W, **kw):
    return GPTConfig.llama(**{**dict(vocab_size=40, block_size=48, n_layer=2, n_embd=32, n_head=4, n_kv_heads=2,
                                     sliding_window=W), **kw})


def test_windowed_attention_is_the_full_one_with_the_mask_cut_to_the_window():
    torch.manual_seed(0)
    attn = Attention(windowed(5)).eval()
    q, k, v = torch.randn(1, 4, 12, 8), torch.randn(1, 2, 12, 8), torch.randn(1, 2, 12, 8)
    t = torch.arange(12)
    band = (t[None, :] <= t[:, None]) & (t[:, None] - t[None, :] < 5)  # (T, S): causal, at most 5 back
    scores = (q @ repeat_kv(k, 2).transpose(-2, -1) / 8**0.5).masked_fill(~band, float("-inf"))
    assert (attn.attend(q, k, v) - scores.softmax(-1) @ repeat_kv(v, 2)).abs().max() < 1e-6


def test_a_window_as_long_as_the_context_changes_nothing():
    torch.manual_seed(0)
    full = GPT(windowed(None)).eval()
    same = GPT(windowed(48)).eval()
    same.load_state_dict(full.state_dict())
    idx = torch.randint(0, 40, (2, 48))
    with torch.no_grad():
        assert torch.equal(full(idx)[0], same(idx)[0])


def test_rolling_cache_logits_equal_the_windowed_forward_at_every_position():
    torch.manual_seed(0)
    cfg = windowed(8)
    model = GPT(cfg).eval()
    idx = torch.randint(0, 40, (1, 48))
    cache = KVCache(cfg, 1, 48)
    assert cache.slots == 15 and cache.chunk == 8  # 2W - 1 slots, whatever the length
    with torch.no_grad():
        full = model(idx)[0]
        steps = [model(idx[:, :6], cache=cache)[0]] + [model(idx[:, t:t + 1], cache=cache)[0] for t in range(6, 48)]
    assert (torch.cat(steps, 1) - full).abs().max() < 1e-5


def test_generation_past_the_context_with_a_window_and_memory_that_stays_flat():
    torch.manual_seed(0)
    cfg = windowed(16, block_size=32)
    model = GPT(cfg).eval()
    prompt = torch.randint(0, 40, (1, 5))
    cached = generate(model, prompt, 100, temperature=0, cache=True)  # 105 positions, context 32
    recomputed = generate(model, prompt, 100, temperature=0, cache=False)  # re-reads the last 32, positions from 0
    assert torch.equal(cached, recomputed)  # RoPE is relative, and L (W - 1) + 1 = 31 <= 32: the re-read sees it all
    assert KVCache(cfg, 1, 105).nbytes == KVCache(cfg, 1, 10_000).nbytes < KVCache(windowed(None), 1, 32).nbytes


def test_long_prompts_enter_a_rolling_cache_in_chunks():
    torch.manual_seed(0)
    cfg = windowed(6, block_size=16)
    model = GPT(cfg).eval()
    prompt = torch.randint(0, 40, (1, 14))  # longer than the chunk (6)
    assert torch.equal(generate(model, prompt, 30, temperature=0, cache=True),
                       generate(model, prompt, 30, temperature=0, cache=False))


def test_bad_windows():
    with pytest.raises(ValueError, match="sliding_window must be None or a positive integer"):
        GPTConfig.llama(sliding_window=0)
    learned = GPT(GPTConfig.tiny(vocab_size=40, block_size=16, sliding_window=4))  # learned positions end at the block
    with pytest.raises(ValueError, match="past the cache"):
        generate(learned, torch.zeros(1, 4, dtype=torch.long), 20, cache=True)


def test_a_windowed_model_completes_prompts_longer_than_its_context():
    torch.manual_seed(0)
    model = GPT(windowed(8, block_size=16)).eval()
    import quanta_tissu as qt

    long_prompt = list(range(1, 30))  # 29 tokens, context 16
    assert qt.generate(model, [long_prompt], 10, temperature=0) == qt.generate(model, [long_prompt], 10, temperature=0, cache=False)
