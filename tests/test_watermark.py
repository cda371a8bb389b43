"""Watermarking (chapter 17): green lists, biased logits, z-scores and watermarked samples equal transformers';
the course model's watermarked text is detected and held-out human text is not; plain sampling is unchanged."""
import pytest

torch = pytest.importorskip("torch")
import quanta_tissu as qt  # noqa: E402
from quanta_tissu.inference import generate  # noqa: E402
from quanta_tissu.watermark import Watermark, detect, z_curve  # noqa: E402

SCHEMES = [("lefthash", 1), ("lefthash", 3), ("selfhash", 1), ("selfhash", 2)]  # (seeding_scheme, context_width)
VOCABS = [(65, 0.25, 2.0), (100, 0.5, 1.5), (1000, 0.1, 3.0)]  # (vocab_size, gamma, delta)
PROMPTS = ["ROMEO:\n", "JULIET:", "First Citizen:\nWe are", "K", "Thou art", "O", "What say you", "MENENIUS:\nNay"]


@pytest.fixture(scope="module")
def course():
    return qt.pretrained("shakespeare-llama", progress=False)


@pytest.fixture(scope="module")
def held_out_text(shakespeare_text):
    return qt.data.train_val_split(shakespeare_text)[1]


def _hf_config(vocab_size):
    """A tiny Llama config for WatermarkDetector, which reads only vocab_size and bos_token_id from it."""
    transformers = pytest.importorskip("transformers")
    return transformers.LlamaConfig(vocab_size=vocab_size, hidden_size=8, intermediate_size=16, num_hidden_layers=1,
                                    num_attention_heads=1, num_key_value_heads=1, bos_token_id=vocab_size - 1)


@pytest.mark.parametrize("scheme,width", SCHEMES)
@pytest.mark.parametrize("V,gamma,delta", VOCABS)
def test_biased_logits_equal_transformers_processor(scheme, width, V, gamma, delta):
    pytest.importorskip("transformers")
    from transformers.generation.logits_process import WatermarkLogitsProcessor

    theirs = WatermarkLogitsProcessor(V, "cpu", gamma, delta, seeding_scheme=scheme, context_width=width)
    ours = Watermark(V, gamma, delta, seeding_scheme=scheme, context_width=width)
    torch.manual_seed(0)
    for T in [1, 2, 7]:  # shorter than the context width: both leave the logits alone
        ids, logits = torch.randint(0, V, (6, T)), torch.randn(6, V)
        logits[0, :3] = float("-inf")  # filtered tokens stay filtered
        assert torch.equal(ours.bias(logits, ids), theirs(ids, logits.clone()))


@pytest.mark.parametrize("V,gamma,delta", VOCABS)
def test_greenlists_equal_transformers(V, gamma, delta):
    pytest.importorskip("transformers")
    from transformers.generation.logits_process import WatermarkLogitsProcessor

    theirs = WatermarkLogitsProcessor(V, "cpu", gamma, delta)
    prev = torch.tensor([0, 1, 2, V // 2, V - 1, 1])  # a repeated row too
    mask = Watermark(V, gamma, delta).greenlist(prev)  # (6, V)
    assert mask.shape == (6, V) and (mask.sum(1) == int(V * gamma)).all()
    for row, p in zip(mask, prev):
        assert torch.equal(row.nonzero()[:, 0], theirs._get_greenlist_ids(p[None]).sort().values)


@pytest.mark.parametrize("ignore_repeated_ngrams", [False, True])
@pytest.mark.parametrize("scheme,width", SCHEMES)
def test_z_scores_equal_transformers_detector(scheme, width, ignore_repeated_ngrams):
    transformers = pytest.importorskip("transformers")
    V = 65
    wm = Watermark(V, 0.25, 2.0, seeding_scheme=scheme, context_width=width)
    config = transformers.WatermarkingConfig(greenlist_ratio=0.25, bias=2.0, seeding_scheme=scheme, context_width=width)
    detector = transformers.WatermarkDetector(_hf_config(V), "cpu", config,
                                              ignore_repeated_ngrams=ignore_repeated_ngrams)
    torch.manual_seed(0)
    for alphabet, T in [(V - 1, 80), (4, 60), (64, width + 1)]:  # a small alphabet repeats n-grams; the fewest tokens
        ids = torch.randint(0, alphabet, (3, T))  # never the BOS id (V - 1), which the detector would drop
        out = detector(ids, return_dict=True)
        for b in range(3):
            found = detect(ids[b], wm, ignore_repeated_ngrams)
            assert abs(found.z - out.z_score[b]) < 1e-9 and abs(found.p_value - out.p_value[b]) < 1e-12
            assert (found.green, found.scored) == (out.num_green_tokens[b], out.num_tokens_scored[b])
    with_bos = torch.cat([torch.full((3, 1), V - 1), ids], 1)  # the detector strips a leading BOS; we take none
    assert abs(detect(ids[0], wm, ignore_repeated_ngrams).z - detector(with_bos, return_dict=True).z_score[0]) < 1e-9


@pytest.mark.parametrize("scheme,width", [("lefthash", 1), ("selfhash", 2)])
def test_z_curve_is_the_z_of_every_prefix(scheme, width):
    wm = Watermark(65, seeding_scheme=scheme, context_width=width)
    ids = torch.randint(0, 6, (50,), generator=torch.Generator().manual_seed(0))
    unscored = width if scheme == "lefthash" else width - 1  # positions before the first n-gram ends
    for ignore in [False, True]:
        curve = z_curve(ids, wm, ignore)
        assert curve.shape == (50,) and curve[:unscored].isnan().all() and not curve[unscored:].isnan().any()
        for t in range(width + 1, 51, 7):
            assert abs(curve[t - 1].item() - detect(ids[:t], wm, ignore).z) < 1e-9


def test_bad_arguments_are_named():
    for kwargs, name in [(dict(gamma=0.0), "gamma"), (dict(gamma=1.0), "gamma"), (dict(delta=-1.0), "delta"),
                         (dict(seeding_scheme="hash"), "seeding_scheme"), (dict(context_width=0), "context_width"),
                         (dict(vocab_size=1), "vocab_size"), (dict(gamma=0.01), "gamma")]:
        with pytest.raises(ValueError, match=name):
            Watermark(**{"vocab_size": 65, **kwargs})
    wm = Watermark(65)
    with pytest.raises(ValueError, match="input_ids"):
        wm.bias(torch.zeros(1, 65), torch.tensor([[65]]))
    with pytest.raises(ValueError, match="logits"):
        wm.bias(torch.zeros(1, 64), torch.tensor([[3]]))
    with pytest.raises(ValueError, match="ids"):
        detect([3, 70, 4], wm)
    with pytest.raises(ValueError, match="at least 2"):
        detect([3], wm)


# (our knobs, transformers' generate arguments, scheme, new tokens): sampling, greedy after a penalty, selfhash
SAMPLERS = [(dict(temperature=0.7, top_k=10), dict(do_sample=True, temperature=0.7, top_k=10), "lefthash", 50),
            (dict(temperature=0, repetition_penalty=1.3), dict(do_sample=False, repetition_penalty=1.3), "lefthash",
             50),
            (dict(temperature=1.3, top_p=0.9), dict(do_sample=True, temperature=1.3, top_p=0.9, top_k=0), "selfhash",
             20)]


@pytest.mark.parametrize("ours,theirs,scheme,n", SAMPLERS, ids=["sample", "greedy", "selfhash"])
def test_watermarked_samples_equal_transformers_generate(course, tmp_path, ours, theirs, scheme, n):
    """The same model in transformers draws the same tokens: the bias comes after every filter, as there."""
    transformers = pytest.importorskip("transformers")
    model, tok = course
    qt.save_hf(model, tmp_path)
    hf = transformers.AutoModelForCausalLM.from_pretrained(tmp_path).eval()
    prompt = torch.tensor([tok.encode("ROMEO:\n").tolist()])
    torch.manual_seed(0)  # no generator: both sample from torch's global one
    mine = generate(model, prompt, n, watermark=Watermark(65, seeding_scheme=scheme), **ours)
    torch.manual_seed(0)
    config = transformers.WatermarkingConfig(seeding_scheme=scheme)
    with torch.no_grad():
        hers = hf.generate(prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=n,
                           watermarking_config=config, **theirs)
    assert torch.equal(mine, hers)


def test_course_samples_are_detected_and_held_out_text_is_not(course, held_out_text):
    """Measured (gamma 0.25, delta 2, 8 prompts): z after 50/100/200 tokens 5.5/7.8/10.4 on average (min 3.9/5.9/8.7);
    held-out windows of 200 characters: 0 of 200 above 4 (largest 3.5)."""
    model, tok = course
    wm = Watermark(tok.vocab_size)  # transformers' defaults
    marked = qt.generate(model, PROMPTS, 200, tok, seed=0, watermark=wm, cache=False)  # past the 64-token context
    curves = torch.stack([z_curve(tok.encode(text), wm) for text in marked])  # (8, 200)
    assert (curves.nan_to_num(-9.0).amax(1) >= 4).sum() >= 6  # most prompts cross 4 within 200 tokens
    assert curves[:, -1].mean() > 6
    starts = torch.linspace(0, len(held_out_text) - 201, 200).long().tolist()
    human = torch.tensor([detect(tok.encode(held_out_text[s:s + 200]), wm).z for s in starts])
    assert (human > 4).float().mean() <= 0.01


def test_long_human_text_drifts_unless_repeats_count_once(course, held_out_text):
    """Fixed green lists meet a language's fixed bigram frequencies: the whole validation split (111,540 characters)
    scores z 16.9; counting each distinct bigram once brings it back to 1.1."""
    model, tok = course
    ids, wm = tok.encode(held_out_text), Watermark(tok.vocab_size)
    assert detect(ids, wm).z > 4 and detect(ids, wm, ignore_repeated_ngrams=True).z < 4


def test_sampling_without_a_watermark_is_unchanged(course):
    model, tok = course
    assert qt.inference.Sampling().watermark is None
    # recorded with chapter 10's sampler, before the watermark existed
    assert qt.generate(model, "ROMEO:\n", 40, tok, seed=0) == "Thord his know selter?\nHow nears! you wi"
    knobs = dict(temperature=0.8, top_k=20, top_p=0.9, repetition_penalty=1.2, seed=0)
    plain = qt.generate(model, PROMPTS[:3], 40, tok, **knobs)
    assert qt.generate(model, PROMPTS[:3], 40, tok, watermark=Watermark(65, delta=0.0), **knobs) == plain
    assert qt.generate(model, PROMPTS[:3], 40, tok, watermark=Watermark(65), **knobs) != plain
