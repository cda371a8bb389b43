"""Chapter 16's preference data: the judge, pairs sampled and judged, batches for the Trainer, the KL to the
reference; and chapter 15's held-out play and window loss."""
import pytest

torch = pytest.importorskip("torch")
import torch.nn.functional as F  # noqa: E402

from quanta_tissu import preferences as P  # noqa: E402
from quanta_tissu.data import split_held_out_play  # noqa: E402
from quanta_tissu.gpt import GPT, GPTConfig  # noqa: E402
from quanta_tissu.tokenizer import CharTokenizer  # noqa: E402
from quanta_tissu.zoo import windows_loss  # noqa: E402

TOK = CharTokenizer.from_text("abcde fghij\nklmnopqrstuvwxyzE")


def tiny(seed=0, block=24):
    torch.manual_seed(seed)
    return GPT(GPTConfig.llama(vocab_size=TOK.vocab_size, block_size=block, n_layer=1, n_head=2, n_embd=16, d_ff=32,
                               n_kv_heads=1)).eval()


def test_avoid_letter_counts_both_cases_and_rejects_bad_letters():
    judge = P.avoid_letter("e")
    assert judge("Eve sleeps") == -4 and judge("xyz") == 0
    for bad in ("", "ee", "3", 5):
        with pytest.raises(ValueError, match="one alphabetic character"):
            P.avoid_letter(bad)


def test_sampled_pairs_prefer_by_the_judge():
    judge = P.avoid_letter("e")
    pairs = P.sample_pairs(tiny(), TOK, ["abc", "klm", "xyz"], judge, k=4, max_new_tokens=12, seed=3)
    assert pairs and all(judge(c) > judge(r) and len(c) == len(r) == 12 for _, c, r in pairs)
    again = P.sample_pairs(tiny(), TOK, ["abc", "klm", "xyz"], judge, k=4, max_new_tokens=12, seed=3)
    assert again == pairs  # seeded
    with pytest.raises(ValueError, match="k must be >= 2"):
        P.sample_pairs(tiny(), TOK, ["abc"], judge, k=1)


def test_preference_pairs_split_batches_and_errors():
    pairs = [("ab", "cde", "fgh"), ("kl", "m", "nop"), ("q", "rs", "tu"), ("vw", "xyz", "a"), ("b", "c", "d")]
    data = P.PreferencePairs(pairs, TOK, block_size=8, held_out=0.4)
    assert len(data.splits["train"]) == 3 and len(data.splits["val"]) == 2
    batch = data.get_batch("train", 4, torch.Generator().manual_seed(0))
    assert len(batch) == 6 and all(t.shape == batch[0].shape and t.shape[0] == 4 for t in batch)
    whole = data.all("val")
    assert whole[0].shape[0] == 2 and whole[1].sum(1).tolist() == [3, 1]  # completion tokens of y_w: "xyz", "c"
    with pytest.raises(ValueError, match="longer than the context"):
        P.PreferencePairs(pairs, TOK, block_size=4)
    with pytest.raises(ValueError, match="cannot be split"):
        P.PreferencePairs(pairs[:1], TOK, block_size=8)


def test_completion_kl_is_zero_for_the_reference_and_exact_otherwise():
    policy, reference = tiny(0), tiny(1)
    data = P.PreferencePairs([("abc", "defg", "hij"), ("klm", "nop", "qrstu"), ("vw", "x", "yz")], TOK, 24, 0.34)
    ids, mask = data.all("train")[:2]
    assert P.completion_kl(reference, reference, ids, mask) == pytest.approx(0.0, abs=1e-7)
    with torch.no_grad():
        logp = F.log_softmax(policy(ids)[0][:, :-1], -1)
        logq = F.log_softmax(reference(ids)[0][:, :-1], -1)
    rows = [(b, t) for b in range(ids.size(0)) for t in range(1, ids.size(1)) if mask[b, t]]
    brute = sum(F.kl_div(logq[b, t - 1], logp[b, t - 1], log_target=True, reduction="sum").item() for b, t in rows)
    assert P.completion_kl(policy, reference, ids, mask) == pytest.approx(brute / len(rows), rel=1e-5)


def test_held_out_play_split_and_window_loss():
    before, play = split_held_out_play("xx\nMaster:\nBoatswain!\nyy")
    assert before == "xx\n" and play.startswith("Master:\nBoatswain!")
    for text in ("no play here", "Master:\nBoatswain! Master:\nBoatswain!"):
        with pytest.raises(ValueError, match="exactly once"):
            split_held_out_play(text)
    model = tiny(block=8)
    ids = torch.as_tensor(TOK.encode("abcdefghijklmnopqrstuvwxyz"))  # 26 ids: 3 whole windows of 8 + 1
    x, y = ids[:24].view(3, 8), ids[1:25].view(3, 8)
    with torch.no_grad():
        expected = model(x, y)[1].item()
    assert windows_loss(model, ids) == pytest.approx(expected, rel=1e-6)
    with pytest.raises(ValueError, match="do not fill one window"):
        windows_loss(model, ids[:5])
