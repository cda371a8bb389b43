"""qt.sampling against transformers' logits processors: the same -inf masks, the same finite values."""
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
from transformers.generation import logits_process as hf  # noqa: E402

from quanta_tissu import sampling  # noqa: E402


def hard_rows(V: int, gen: torch.Generator) -> torch.Tensor:
    """Rows that break careless samplers: ties, -inf entries, one dominant logit, a flat row."""
    rows = torch.randn(6, V, generator=gen)
    rows[0, :5] = rows[0].max() + 1.0  # a five-way tie at the top
    rows[1] = torch.randint(0, 3, (V,), generator=gen).float()  # many ties everywhere
    rows[2, torch.randperm(V, generator=gen)[: V // 3]] = float("-inf")  # already filtered entries
    rows[3, 7] = 60.0  # one dominant logit
    rows[4] = 0.0  # flat
    rows[5, ::2] = float("-inf")
    return rows


def theirs(logits, ids, temperature, top_k, top_p, min_p, penalty):
    out = logits.clone()
    if penalty != 1.0:
        out = hf.RepetitionPenaltyLogitsProcessor(penalty)(ids, out)
    out = hf.TemperatureLogitsWarper(temperature)(ids, out)
    if top_k:
        out = hf.TopKLogitsWarper(top_k)(ids, out)
    if top_p < 1.0:
        out = hf.TopPLogitsWarper(top_p)(ids, out)
    if min_p > 0.0:
        out = hf.MinPLogitsWarper(min_p)(ids, out)
    return out


SETTINGS = [  # temperature, top_k, top_p, min_p, repetition penalty
    (1.0, 0, 1.0, 0.0, 1.0), (0.7, 0, 0.9, 0.0, 1.0), (1.3, 10, 1.0, 0.0, 1.0), (1.0, 0, 1.0, 0.1, 1.0),
    (0.8, 50, 0.95, 0.05, 1.3), (1.0, 100, 0.5, 0.0, 0.8), (2.0, 3, 0.99, 0.2, 1.1), (0.5, 64, 1.0, 0.0, 2.0),
]


@pytest.mark.parametrize("setting", SETTINGS, ids=[str(s) for s in SETTINGS])
def test_process_logits_matches_transformers(setting):
    temperature, top_k, top_p, min_p, penalty = setting
    gen = torch.Generator().manual_seed(hash(setting) % 2**31)
    V = 64  # top_k 64 and 100 reach or pass the vocabulary
    logits = torch.cat([torch.randn(200, V, generator=gen) * 3, hard_rows(V, gen)])  # 206 rows, 8 settings: 1,648
    ids = torch.randint(0, V, (len(logits), 12), generator=gen)
    ours = sampling.process_logits(logits, temperature, top_k, top_p, min_p, penalty, prev_ids=ids)
    expected = theirs(logits, ids, temperature, top_k, top_p, min_p, penalty)
    assert torch.equal(torch.isinf(ours), torch.isinf(expected)), "different tokens filtered"
    finite = torch.isfinite(expected)
    assert (ours[finite] - expected[finite]).abs().max() <= 1e-6


def test_top_p_keeps_the_token_that_crosses_p():
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    kept = torch.isfinite(sampling.top_p_filter(logits, 0.7))[0].tolist()
    assert kept == [True, True, False, False]  # 0.5 < 0.7, 0.5 + 0.3 crosses it: both stay
    assert torch.isfinite(sampling.top_p_filter(logits, 0.5))[0].tolist() == [True, False, False, False]


def test_min_p_is_relative_to_the_top_token():
    probs = torch.tensor([[0.4, 0.3, 0.2, 0.06, 0.04]])
    kept = torch.isfinite(sampling.min_p_filter(probs.log(), 0.125))[0].tolist()  # threshold 0.125 * 0.4 = 0.05
    assert kept == [True, True, True, True, False]


def test_temperature_zero_is_greedy():
    logits = torch.tensor([[0.1, 2.0, 2.0, -1.0]])
    out = sampling.process_logits(logits, temperature=0)
    assert torch.isfinite(out)[0].tolist() == [False, True, False, False]  # the first of tied maxima
    assert sampling.sample(out, greedy=True).item() == 1
    assert sampling.sample(out, torch.Generator().manual_seed(0)).item() == 1  # nothing else can be drawn


@pytest.mark.parametrize("kwargs,match", [
    (dict(temperature=-0.1), "temperature must be >= 0"), (dict(top_k=-1), "top_k must be an integer >= 0"),
    (dict(top_p=0.0), r"top_p must be in \(0, 1\]"), (dict(top_p=1.5), r"top_p must be in \(0, 1\]"),
    (dict(min_p=1.0), r"min_p must be in \[0, 1\)"), (dict(repetition_penalty=0), "repetition_penalty must be > 0"),
])
def test_bad_sampling_arguments_are_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        sampling.process_logits(torch.zeros(1, 4), **kwargs)
