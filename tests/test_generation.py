"""Generation (chapters 10 and 11): batches equal single prompts, the cache equals re-reading, stops and streams."""
import pytest

torch = pytest.importorskip("torch")
import quanta_tissu as qt  # noqa: E402
from quanta_tissu.gpt import GPT, GPTConfig  # noqa: E402
from quanta_tissu.inference import generate, left_pad  # noqa: E402
from quanta_tissu.kv_cache import KVCache  # noqa: E402


@pytest.fixture(scope="module")
def course():
    return qt.pretrained("shakespeare-llama", progress=False)


PROMPTS = ["ROMEO:\n", "JULIET:", "First Citizen:\nWe are", "K", "Thou art", "O", "What say you", "MENENIUS:\nNay"]


@pytest.mark.parametrize("cache", [True, False])
def test_batched_greedy_equals_each_prompt_alone(course, cache):
    model, tok = course
    batched = qt.generate(model, PROMPTS, 40, tok, temperature=0, cache=cache)
    assert batched == [qt.generate(model, p, 40, tok, temperature=0, cache=cache) for p in PROMPTS]


@pytest.mark.parametrize("cfg", [GPTConfig.llama(vocab_size=50, block_size=1024, n_layer=1, n_embd=16, n_head=4, n_kv_heads=2),
                                 GPTConfig.tiny(vocab_size=50, block_size=300, n_embd=32, n_head=4)],
                         ids=["llama-gqa", "gpt2"])
def test_cached_logits_equal_a_full_forward_at_every_position(cfg):
    torch.manual_seed(0)
    model = GPT(cfg).eval()
    T = min(cfg.block_size, 1024)
    idx = torch.randint(0, 50, (1, T))
    cache = KVCache(cfg, 1, T)
    with torch.no_grad():
        full = model(idx)[0]
        steps = [model(idx[:, :5], cache=cache)[0]] + [model(idx[:, t:t + 1], cache=cache)[0] for t in range(5, T)]
    assert (torch.cat(steps, dim=1) - full).abs().max() < 1e-5
    assert cache.length == T


def test_a_thousand_greedy_tokens_agree_with_and_without_the_cache():
    torch.manual_seed(1)
    model = GPT(GPTConfig.llama(vocab_size=50, block_size=1024, n_layer=1, n_embd=16, n_head=2, n_kv_heads=1)).eval()
    prompt = torch.randint(0, 50, (1, 8))
    assert torch.equal(generate(model, prompt, 1000, temperature=0, cache=True),
                       generate(model, prompt, 1000, temperature=0, cache=False))


def test_cache_memory_is_the_formula():
    cfg = GPTConfig.llama(vocab_size=50, block_size=128, n_layer=3, n_embd=48, n_head=6, n_kv_heads=2)
    cache = KVCache(cfg, batch_size=4, max_len=100)
    assert cache.k.shape == (3, 4, 2, 100, 8)
    assert cache.nbytes == 2 * 3 * 4 * 100 * 2 * 8 * 4  # 2 (k, v) * L * B * T * KV * D * 4 bytes


def test_padded_cached_batch_equals_one_by_one_with_sampling(course):
    model, tok = course
    kw = dict(temperature=0.9, top_k=20, top_p=0.95, repetition_penalty=1.1)
    for seed in range(3):  # one prompt alone draws the same numbers as a batch of one
        assert qt.generate(model, ["ROMEO:"], 30, tok, seed=seed, **kw) == [qt.generate(model, "ROMEO:", 30, tok, seed=seed, **kw)]


def test_stop_tokens_and_stop_strings_across_token_boundaries(course):
    model, tok = course
    full = qt.generate(model, "ROMEO:\n", 50, tok, temperature=0)
    two_chars = full[10:12]  # a stop string made of two character tokens
    cut = qt.generate(model, "ROMEO:\n", 50, tok, temperature=0, stop=[two_chars])
    assert cut == full[:full.index(two_chars)]
    newline = tok.encode("\n")[0]
    by_id = qt.generate(model, ["ROMEO:\n", "JULIET:"], 50, tok, temperature=0, stop=[newline])
    assert all("\n" not in text for text in by_id) and by_id[0] == full.split("\n")[0]


class Scripted(torch.nn.Module):
    """A 'model' that always predicts the next token of a script: streams test tokenizers, not models."""

    def __init__(self, script, vocab_size):
        super().__init__()
        self.script, self.cfg = script, GPTConfig.tiny(vocab_size=vocab_size, block_size=512)
        self.wte = torch.nn.Embedding(1, 1)

    def forward(self, idx, targets=None, attention_mask=None, cache=None):
        n = idx.size(1) + (cache.length if cache is not None else 0)
        if cache is not None:
            cache.advance(idx.size(1))
        logits = torch.full((idx.size(0), idx.size(1), self.cfg.vocab_size), -1e9)
        logits[:, -1, self.script[(n - 1) % len(self.script)]] = 0.0
        return logits, None


def test_stream_never_splits_a_utf8_character():
    tok = qt.RegexBPE()
    tok.train("plain ascii text, a few words, and some more words " * 20, 300)  # no merges inside 👋 or 世界
    text = "héllo 👋 世界, ça va ?"
    script = tok.encode(text)
    assert len(script) > len(text)  # byte tokens: the emoji and the CJK characters are split across tokens
    model = Scripted(script[1:] + script[:1], tok.vocab_size)
    pieces = list(qt.stream(model, text[0], len(script) - 1, tok, temperature=0))
    assert "".join(pieces) == text[1:] == qt.generate(model, text[0], len(script) - 1, tok, temperature=0)
    assert all("\ufffd" not in p for p in pieces) and len(pieces) < len(script) - 1  # bytes waited for their char


@pytest.mark.parametrize("call,match", [
    (lambda m, t: qt.generate(m, "x" * 65, 5, t), "longer than the context"),
    (lambda m, t: qt.generate(m, "", 5, t), "a prompt is empty"),
    (lambda m, t: qt.generate(m, [[0, 99]], 5), r"prompt ids must be in 0\.\.64"),
    (lambda m, t: qt.generate(m, "ROMEO:", 100, t), "past the cache"),
    (lambda m, t: qt.generate(m, "ROMEO:", 5, t, temperature=-1), "temperature must be >= 0"),
    (lambda m, t: qt.generate(m, "ROMEO:", 5, t, top_p=0), r"top_p must be in \(0, 1\]"),
    (lambda m, t: qt.generate(m, ["ROMEO:"], 5, stop=["\n"]), "stop strings need a tokenizer"),
])
def test_bad_generation_arguments_are_named(course, call, match):
    model, tok = course
    with pytest.raises(ValueError, match=match):
        call(model, tok)


def test_left_pad():
    idx, mask = left_pad([[5, 6, 7], [8]], pad_id=0)
    assert idx.tolist() == [[5, 6, 7], [0, 0, 8]] and mask.tolist() == [[1, 1, 1], [0, 0, 1]]


def test_prompts_as_tensors_arrays_and_id_lists_give_the_obvious_result(course):
    """A (B, T) tensor or array is B prompts; a 1-D one, or a flat id list, is one prompt (issue: tensor prompts)."""
    np = pytest.importorskip("numpy")
    model, tok = course
    rows = [[int(i) for i in tok.encode(s)] for s in ("ROMEO:", "JULIET")]
    expected = qt.generate(model, rows, 12, temperature=0)  # a list of id lists: the form that always worked
    assert len(expected) == 2 and all(isinstance(i, int) for i in expected[0])
    assert qt.generate(model, torch.tensor(rows), 12, temperature=0) == expected
    assert qt.generate(model, np.array(rows), 12, temperature=0) == expected
    assert qt.generate(model, [torch.tensor(r) for r in rows], 12, temperature=0) == expected
    assert qt.generate(model, torch.tensor(rows[0]), 12, temperature=0) == expected[0]  # one prompt, one answer
    assert qt.generate(model, np.array(rows[0], dtype=np.int32), 12, temperature=0) == expected[0]
    assert qt.generate(model, rows[0], 12, temperature=0) == expected[0]
    assert qt.generate(model, torch.tensor(rows), 12, tok, temperature=0) == [tok.decode(e) for e in expected]


@pytest.mark.parametrize("prompts,error,match", [
    (torch.zeros(1, 2, 3, dtype=torch.long), TypeError, r"2-D one, \(B, T\).*got 3-D ids, a torch.Tensor of torch.int64, shape \(1, 2, 3\)"),
    (torch.zeros(0, dtype=torch.long), ValueError, "a prompt is empty"),
    (torch.zeros(0, 4, dtype=torch.long), ValueError, "prompts is empty"),
    (torch.zeros(2, 0, dtype=torch.long), ValueError, "a prompt is empty"),
    (torch.tensor([[1.0, 2.0]]), TypeError, "prompt ids must be integers, got a torch.Tensor of torch.float32"),
    ([1, 2.5], TypeError, r"prompt ids must be integers, got 2\.5 \(float\)"),
    (42, TypeError, "prompts may be a string.*got an int"),
    ({"prompt": "ROMEO"}, TypeError, "got a dict"),
    ([[1, 2], 7], TypeError, "a prompt inside them was an int"),
])
def test_prompts_of_the_wrong_form_are_named(course, prompts, error, match):
    model, _ = course
    with pytest.raises(error, match=match):
        qt.generate(model, prompts, 3, temperature=0)


def test_the_model_names_an_array_given_for_a_tensor(course):
    """int64 reads the same in NumPy and torch: the error must say that an array came where a tensor belongs."""
    model, _ = course
    with pytest.raises(TypeError, match=r"idx must be a torch.Tensor of token ids \(int64 or int32\), got a "
                                        r"numpy.ndarray of int64, shape \(1, 3\); convert it with torch.from_numpy"):
        model(torch.tensor([[1, 2, 3]]).numpy())
