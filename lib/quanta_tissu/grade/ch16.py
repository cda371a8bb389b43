"""Checks for chapter 16's exercises (DPO), against ``qt.dpo``'s conventions (trl's): log-probabilities summed over
completion tokens only, the loss -log σ(β h) averaged over pairs, rewards β (log πθ - log πref)."""
import math
import numbers

import torch
import torch.nn.functional as F

from .. import dpo
from .core import CheckFailed, assert_close


def _tensor(got, name: str) -> torch.Tensor:
    if got is None:
        raise CheckFailed(f"{name} returned None; did you forget to return it?")
    if isinstance(got, tuple):
        raise CheckFailed(f"{name} returned a tuple of {len(got)}: return one tensor")
    return torch.as_tensor(got)


def _close(got: torch.Tensor, expected: torch.Tensor, rtol: float = 1e-4, atol: float = 1e-5) -> bool:
    return got.shape == expected.shape and bool(torch.isfinite(got).all()) and torch.allclose(
        got, expected.to(got.dtype), rtol=rtol, atol=atol)


def _name_mistake(got: torch.Tensor, expected: torch.Tensor, wrong: list, **tol) -> None:
    """Raise the message of the first wrong variant that ``got`` equals (unless it equals the right answer)."""
    if _close(got, expected, **tol):
        return
    for value, message in wrong:
        if _close(got, value, **tol):
            raise CheckFailed(message)


def _pairs():
    """Eight pairs of summed log-probabilities (policy, reference; chosen, rejected), margins β h of about ±3."""
    g = torch.Generator().manual_seed(1)
    return [-(torch.rand(8, generator=g) * 30 + 5) for _ in range(4)]


# -- sequence_logprob ---------------------------------------------------------------------------------------------

def check_sequence_logprob(fn) -> str:
    g = torch.Generator().manual_seed(0)
    batch, T, V = 3, 8, 11
    logits = (torch.randn(batch, T, V, generator=g) * 2).requires_grad_()
    ids = torch.randint(0, V, (batch, T), generator=g)
    mask = torch.tensor([[0, 0, 1, 1, 1, 1, 1, 1],   # a 2-token prompt, 6 completion tokens
                         [0, 0, 0, 1, 1, 1, 0, 0],   # a 3-token prompt, 3 completion tokens, 2 of padding
                         [0, 1, 1, 1, 1, 1, 1, 1]])  # a 1-token prompt: token 0 is never scored
    logits_before = logits.detach().clone()
    got = _tensor(fn(logits, ids, mask.clone()), "sequence_logprob")
    if not torch.equal(logits.detach(), logits_before):
        raise CheckFailed("you changed logits in place: compute new tensors")
    expected = dpo.sequence_logprobs(lambda x, attention_mask=None: (logits.detach(), None), ids, mask)  # (B,)
    if got.shape == (batch, T - 1) or got.shape == (batch, T):
        raise CheckFailed(f"you returned one log-probability per token, shape {tuple(got.shape)}: sum the scored "
                          f"tokens of each row into one number, shape ({batch},)")
    if got.dim() == 0:
        raise CheckFailed(f"you returned one number for the whole batch: return one per row, shape ({batch},) "
                          "(sum over the tokens, dim=1, not over the batch too)")
    plain = got.detach().float()
    with torch.no_grad():
        lp = torch.log_softmax(logits, dim=-1)  # (B, T, V)
        shifted = lp[:, :-1].gather(-1, ids[:, 1:, None]).squeeze(-1)  # (B, T-1), the right token log-probs
        unshifted = lp.gather(-1, ids[..., None]).squeeze(-1)  # (B, T): logits t scoring token t
        m, m_early = mask[:, 1:].float(), mask[:, :-1].float()
        raw = logits[:, :-1].gather(-1, ids[:, 1:, None]).squeeze(-1)
        over_time = torch.log_softmax(logits, dim=1)[:, :-1].gather(-1, ids[:, 1:, None]).squeeze(-1)
        over_batch = torch.log_softmax(logits, dim=0)[:, :-1].gather(-1, ids[:, 1:, None]).squeeze(-1)
        shift = ("the logits are not shifted: logits[:, t] predict the next token, ids[:, t + 1]; score token t "
                 "with logits[:, t - 1] (logits[:, :-1] against ids[:, 1:] and completion_mask[:, 1:])")
        wrong = [
            ((unshifted * mask).sum(1), shift),
            (unshifted.sum(1), shift + "; and the prompt is scored too: keep the completion's tokens only"),
            ((shifted * m_early).sum(1), "the mask is off by one: it belongs to the targets ids[:, 1:], so use "
                                          "completion_mask[:, 1:] (you used completion_mask[:, :-1])"),
            (shifted.sum(1), "you scored the prompt (and padding) tokens too: sum over the completion's tokens only, "
                             "where completion_mask[:, 1:] is 1; the prompt conditions the completion, it is not scored"),
            ((shifted * m).sum(1) / m.sum(1), "you averaged the token log-probabilities: DPO sums them (the mean per "
                                              "token is what IPO uses); return the sum over the completion's tokens"),
            ((shifted.exp() * m).sum(1), "you summed probabilities: sum the LOG-probabilities, log_softmax, not softmax"),
            ((shifted * m).sum(1).exp(), "you returned the probability of the completion, exp of the answer: return "
                                         "the log-probability (a product of many probabilities underflows to 0)"),
            ((raw * m).sum(1), "you summed raw logits: take log_softmax over the vocabulary first, so that each "
                               "position's scores become log-probabilities"),
            ((over_time * m).sum(1), "log_softmax ran over the wrong axis, dim=1 (time): normalize over the "
                                     "vocabulary, the last axis (dim=-1)"),
            ((over_batch * m).sum(1), "log_softmax ran over the wrong axis, dim=0 (the batch): normalize over the "
                                      "vocabulary, the last axis (dim=-1)"),
            (-(shifted * m).sum(1), "the sign is flipped: you returned the negative log-likelihood (a loss, >= 0); "
                                    "return the log-probability itself (<= 0)"),
        ]
    _name_mistake(plain, expected, wrong)
    msg = assert_close(plain, expected.numpy(), "sequence_logprob(logits (3, 8, 11), ids, completion_mask)",
                       rtol=1e-5, atol=1e-5)
    if not got.requires_grad:
        raise CheckFailed("your result carries no gradient: the policy learns through these log-probabilities "
                          "(no torch.no_grad(), .detach() or .item())")
    got.sum().backward()
    if logits.grad is None or not logits.grad.abs().sum() > 0:
        raise CheckFailed("no gradient reaches the logits: build the result from them (no .detach() or .data)")
    bool_got = _tensor(fn(logits.detach(), ids, mask.bool()), "sequence_logprob").detach().float()
    assert_close(bool_got, expected.numpy(), "sequence_logprob with a bool completion_mask", rtol=1e-5, atol=1e-5)
    return msg + "; shifted, completion tokens only, summed, as qt.dpo.sequence_logprobs"


# -- dpo_loss -----------------------------------------------------------------------------------------------------

def check_dpo_loss(fn) -> str:
    beta = 0.1
    pc, pr, rc, rr = (x.clone().requires_grad_() for x in _pairs())
    got = fn(pc, pr, rc, rr, beta)
    if isinstance(got, tuple):
        raise CheckFailed(f"dpo_loss returned a tuple of {len(got)}: return the loss alone, a 0-d tensor")
    got = _tensor(got, "dpo_loss")
    expected = dpo.dpo_loss(pc.detach(), pr.detach(), rc.detach(), rr.detach(), beta).loss
    if got.shape == pc.shape:
        raise CheckFailed(f"you returned one loss per pair, shape {tuple(got.shape)}: return their mean over the "
                          "batch, a 0-d tensor")
    plain = got.detach().float().reshape(()) if got.numel() == 1 else got.detach().float()
    with torch.no_grad():
        h = (pc - rc) - (pr - rr)
        z = beta * h
        wrong = [
            (-F.logsigmoid(-z).mean(), "the sign is wrong: you used -log σ(-β h), which rewards the REJECTED "
                                       "completions. At the start (policy = reference, h = 0) both give ln 2, but the "
                                       "gradient pushes the policy the wrong way; h = (chosen ratio) - (rejected ratio)"),
            (F.logsigmoid(z).mean(), "you forgot the minus: that is log σ(β h), which gradient descent would push "
                                     "down (making the chosen completions less likely); the loss is -log σ(β h) >= 0"),
            (-F.logsigmoid(h).mean(), "beta is missing: the loss is -log σ(β h), with β inside the sigmoid"),
            (-beta * F.logsigmoid(h).mean(), "beta multiplies the loss; it belongs inside the sigmoid, -log σ(β h)"),
            (-F.logsigmoid(h / beta).mean(), "you divided by beta: the loss is -log σ(β h), β times h"),
            (-F.logsigmoid(beta * (pc - pr)).mean(), "the reference is ignored: h subtracts the reference's "
                                                     "log-probabilities, (πc - rc) - (πr - rr); without them DPO is "
                                                     "not anchored to the model it started from"),
            (-F.logsigmoid(beta * ((pc - rr) - (pr - rc))).mean(), "the reference terms are swapped: h = (log πθ(y_w) - "
                                                                    "log πref(y_w)) - (log πθ(y_l) - log πref(y_l))"),
            (-F.logsigmoid(z).sum(), "you summed over the pairs: take the mean over the batch (the loss should not "
                                     "grow with the batch size)"),
        ]
    _name_mistake(plain, expected, wrong, rtol=1e-5, atol=1e-6)
    msg = assert_close(plain, expected.numpy(), "dpo_loss(8 pairs, beta=0.1)", rtol=1e-5, atol=1e-6)
    if not got.requires_grad:
        raise CheckFailed("your loss carries no gradient: the policy cannot learn from it (no torch.no_grad(), "
                          ".detach() or .item())")
    got.sum().backward()
    if pc.grad is None or pr.grad is None:
        raise CheckFailed("no gradient reaches the policy's log-probabilities")
    if not ((pc.grad < 0).all() and (pr.grad > 0).all()):
        raise CheckFailed("the gradient goes the wrong way: descending it should raise log πθ(y_w|x) (d loss / d "
                          "policy_chosen < 0) and lower log πθ(y_l|x) (d loss / d policy_rejected > 0)")
    start = _tensor(fn(pc.detach(), pr.detach(), pc.detach(), pr.detach(), beta), "dpo_loss").detach().float()
    assert_close(start.reshape(()) if start.numel() == 1 else start, math.log(2),
                 "dpo_loss at the start (policy = reference): ln 2", rtol=1e-5, atol=1e-6)
    # a pair the policy gets badly wrong, β h = -399: there log(sigmoid(z)) is log 0 = -inf in float32
    far = [torch.tensor([-4000.0, -20.0]), torch.tensor([-20.0, -22.0]), torch.tensor([-10.0, -20.0]),
           torch.tensor([-20.0, -22.0])]  # policy chosen, policy rejected, reference chosen, reference rejected
    extreme = _tensor(fn(*far, beta), "dpo_loss").detach().float()
    want = dpo.dpo_loss(*far, beta).loss
    if extreme.numel() == 1 and not torch.isfinite(extreme).all():
        raise CheckFailed(f"with β h = -399 your loss is {extreme.item()}: log(torch.sigmoid(z)) is log 0 = -inf in "
                          "float32; use F.logsigmoid(z) (or -F.softplus(-z)), which stays finite")
    assert_close(extreme.reshape(()) if extreme.numel() == 1 else extreme, want.numpy(),
                 "dpo_loss of a pair with β h = -399", rtol=1e-5, atol=1e-4)
    return msg + "; ln 2 at the start, gradients raise the chosen and lower the rejected, finite at β h = -399"


# -- implicit_rewards ---------------------------------------------------------------------------------------------

def check_implicit_rewards(fn) -> str:
    pc, pr, rc, rr = _pairs()
    out = dpo.dpo_loss(pc, pr, rc, rr, 0.1)
    for beta, policy, ref, expected in ((0.1, pc, rc, out.chosen_rewards), (0.1, pr, rr, out.rejected_rewards),
                                        (0.5, pc, rc, 0.5 * (pc - rc))):
        got = _tensor(fn(policy.clone(), ref.clone(), beta), "implicit_rewards").detach().float()
        wrong = [(beta * policy, f"the reference is forgotten: the reward is β · (log πθ - log πref); β · log πθ "
                                 "alone rewards whatever the policy finds likely, not what it has learned"),
                 (policy - ref, "beta is forgotten: the reward is β · (log πθ - log πref)"),
                 (beta * (ref - policy), "the sign is flipped: β · (log πθ - log πref), policy minus reference"),
                 ((policy - ref) / beta, "you divided by beta: the reward is β times the log-ratio"),
                 (beta * (policy - ref).sum(), "you summed over the batch: return one reward per completion, (B,)")]
        if got.shape != expected.shape and got.numel() == 1:
            raise CheckFailed(f"you returned one number: return one reward per completion, shape {tuple(expected.shape)}")
        _name_mistake(got, expected, wrong, rtol=1e-5, atol=1e-6)
        msg = assert_close(got, expected.numpy(), f"implicit_rewards(policy, reference, beta={beta})",
                           rtol=1e-5, atol=1e-6)
    return msg + "; as qt.dpo's chosen and rejected rewards"


# -- reward_accuracy ----------------------------------------------------------------------------------------------

def _number(got, name: str) -> float:
    if got is None:
        raise CheckFailed(f"{name} returned None; did you forget to return it?")
    if isinstance(got, torch.Tensor):
        if got.numel() != 1:
            raise CheckFailed(f"{name} returned a tensor of shape {tuple(got.shape)}: return one number, the fraction "
                              "of pairs ranked right")
        got = got.item()
    if not isinstance(got, numbers.Real):
        raise CheckFailed(f"{name} should return a float, got {type(got).__name__}")
    return float(got)


def check_reward_accuracy(fn) -> str:
    zeros = torch.zeros(8)
    start = _number(fn(zeros.clone(), zeros.clone()), "reward_accuracy")
    if start == 1.0:
        raise CheckFailed("at step 0 every reward is 0 (policy = reference), and your accuracy is 1.0: >= counts "
                          "ties as successes; a pair counts only when chosen > rejected, strictly, so it is 0 here")
    if start != 0.0:
        raise CheckFailed(f"with every reward 0 (step 0) the accuracy is 0 (no pair is ranked right yet), got {start}")
    chosen = torch.tensor([0.3, -0.1, 0.2, 0.0, 0.5, -0.4, 0.1, 0.0])
    rejected = torch.tensor([0.1, -0.2, 0.2, -0.3, 0.4, -0.2, 0.0, 0.0])  # 5 above, 2 ties, 1 below
    got = _number(fn(chosen.clone(), rejected.clone()), "reward_accuracy")
    named = {7 / 8: ">= counts the 2 ties as successes: a pair counts only when chosen > rejected, strictly",
             1 / 8: "you counted rejected > chosen: a success is chosen_rewards > rejected_rewards",
             3 / 8: "you counted rejected >= chosen: a success is chosen_rewards > rejected_rewards, strictly",
             5.0: "you returned the count of pairs, 5: divide by the number of pairs (8) for a fraction"}
    for value, message in named.items():
        if abs(got - value) < 1e-6:
            raise CheckFailed(message)
    if abs(got - 5 / 8) > 1e-6:
        raise CheckFailed(f"reward_accuracy of 8 pairs, 5 ranked right, 2 ties, 1 wrong: expected 0.625, got {got}")
    odd = _number(fn(torch.tensor([1.0, 2.0, 3.0]), torch.tensor([0.0, 5.0, 1.0])), "reward_accuracy")
    if abs(odd - 2 / 3) > 1e-6:
        raise CheckFailed(f"reward_accuracy([1, 2, 3], [0, 5, 1]): expected 2/3, got {odd}")
    return "0 at step 0 (all ties), 0.625 for 5 of 8 (ties not counted), 2/3 for 2 of 3"


CHECKS = {
    "sequence_logprob": check_sequence_logprob,
    "dpo_loss": check_dpo_loss,
    "implicit_rewards": check_implicit_rewards,
    "reward_accuracy": check_reward_accuracy,
}
