"""Direct Preference Optimization, DPO (chapter 16): learn from pairs "this answer is better than that one".

Does:
- ``sequence_logprobs``: log p(completion | prompt) under a course model, the sum over the completion's tokens of
  log p(token_t | tokens before t) (or their mean, ``average=True``), for a batch of rows padded on either side.
- ``dpo_loss``: from the four log-probabilities of each pair (policy and reference, chosen and rejected), the
  loss of ``LOSS_TYPES`` ("sigmoid": DPO, "ipo", "hinge"), the implicit rewards β · (log πθ - log πref) and their
  margins.
- ``preference_batch``: (prompt, chosen, rejected) token lists -> a padded ``PreferenceBatch``.
- ``dpo_batch_loss``: one forward of the policy (with gradient) and one of the frozen reference (without) over the
  chosen and rejected rows stacked along the batch axis, then ``dpo_loss``; ``make_loss_fn`` wraps it as the
  Trainer's ``loss_fn(model, batch)`` (chapter 15's seam).
Conventions (tested against trl 1.16's ``DPOTrainer``: its loss, its logged rewards and one SGD step): log-
probabilities are summed over completion tokens only (the prompt conditions them but is not scored, padding is
neither read nor scored); the first token of a row is never scored, so a completion needs a prompt of at least
one token; with logits = (log πθ(y_w|x) - log πref(y_w|x)) - (log πθ(y_l|x) - log πref(y_l|x)), sigmoid is
-log σ(β · logits), hinge is relu(1 - β · logits), IPO is (logits - 1 / (2β))² on log-probabilities averaged per
completion token; no label smoothing; the loss is the mean over pairs. One difference: trl logs IPO's rewards
from the summed log-probabilities, while ``dpo_loss`` reports those of what it is given (the averaged ones).
Does not: sample completions, build a preference data set, keep the reference model in sync with the policy, or
implement trl's other losses (robust, EXO, APO...), its f-divergences or its WPO weighting.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

import torch
import torch.nn.functional as F

from .checks import kind, numpy_hint

LOSS_TYPES = ("sigmoid", "ipo", "hinge")  # trl's names for DPO's logistic loss, IPO's squared one, SLiC's hinge
PADDING_SIDES = ("right", "left")
_REQUIRED = ("chosen_ids", "chosen_completion_mask", "rejected_ids", "rejected_completion_mask")


class DPOOutput(NamedTuple):
    """The batch-mean loss (0-d, with gradient) and, per pair (B,), detached: the implicit rewards
    β · (log πθ - log πref) of the chosen and rejected completions, and margins = chosen - rejected rewards."""

    loss: torch.Tensor
    chosen_rewards: torch.Tensor
    rejected_rewards: torch.Tensor
    margins: torch.Tensor


class PreferenceBatch(NamedTuple):
    """B preference pairs, each field (B, T) int64, chosen and rejected padded to one width T.

    completion masks are 1 on the completion's tokens, 0 on prompt and padding; attention masks 1 on tokens, 0 on
    padding (needed for left padding, None allowed otherwise). A tuple, so that a Trainer can slice its rows."""

    chosen_ids: torch.Tensor
    chosen_completion_mask: torch.Tensor
    chosen_attention_mask: torch.Tensor | None
    rejected_ids: torch.Tensor
    rejected_completion_mask: torch.Tensor
    rejected_attention_mask: torch.Tensor | None


def _check_masks(ids: torch.Tensor, completion_mask: torch.Tensor, attention_mask: torch.Tensor | None) -> None:
    if not isinstance(ids, torch.Tensor) or ids.dtype not in (torch.int64, torch.int32):
        raise ValueError(f"ids must be a torch.Tensor of token ids, dtype torch.int64 or torch.int32, "
                         f"got {kind(ids)}{numpy_hint(ids)}")
    if ids.dim() != 2:
        raise ValueError(f"ids must have shape (B, T), got {tuple(ids.shape)}; add a batch axis with ids[None]")
    for name, mask in (("completion_mask", completion_mask), ("attention_mask", attention_mask)):
        if mask is None and name == "attention_mask":
            continue
        if not isinstance(mask, torch.Tensor) or mask.shape != ids.shape:
            raise ValueError(f"{name} must be a torch.Tensor of the shape of ids {tuple(ids.shape)}, "
                             f"got {kind(mask)}{numpy_hint(mask)}")
        if mask.is_floating_point() or ((mask != 0) & (mask != 1)).any():
            raise ValueError(f"{name} must hold only 0 and 1 (an integer or bool tensor)")


def _check_scored(completion_mask: torch.Tensor, attention_mask: torch.Tensor | None) -> None:
    """Every row scores at least one token, and no completion token is padding or a row's first token."""
    real = torch.ones_like(completion_mask, dtype=torch.bool) if attention_mask is None else attention_mask.bool()
    completion = completion_mask.bool()
    if (completion & ~real).any():
        raise ValueError("completion_mask marks padding tokens (attention_mask 0): completions must be real tokens")
    first = real.int().argmax(dim=1)  # (B,): the column of each row's first token (0 without padding)
    unscored = completion.gather(1, first[:, None]).squeeze(1)  # (B,): is that token marked as completion?
    if unscored.any():
        rows = unscored.nonzero().flatten().tolist()
        raise ValueError(f"rows {rows} start with a completion token, which nothing before it predicts: "
                         "every completion needs a prompt of at least one token (a BOS token will do)")
    empty = completion.sum(dim=1) == 0  # (B,)
    if empty.any():
        raise ValueError(f"rows {empty.nonzero().flatten().tolist()} have no completion token "
                         "(completion_mask all 0): there is nothing to score")


def sequence_logprobs(model, ids: torch.Tensor, completion_mask: torch.Tensor,
                      attention_mask: torch.Tensor | None = None, average: bool = False) -> torch.Tensor:
    """Σ_t log p(ids[t] | ids[<t]) over the completion tokens of each row -> (B,); the mean with ``average``.

    ids (B, T) int64; completion_mask (B, T) 1 on completion tokens, 0 on prompt and padding; attention_mask
    (B, T) 1 on tokens, 0 on padding, needed for left padding (right padding may leave it None: a causal model
    never reads the tokens after the ones it scores). ``model(ids, attention_mask=...)`` returns (logits, _)."""
    _check_masks(ids, completion_mask, attention_mask)
    _check_scored(completion_mask, attention_mask)
    logits, _ = model(ids, attention_mask=attention_mask)  # (B, T, V)
    # (B, T-1, V): the logits at t-1 predict token t; at least float32, as 16-bit sums lose the small differences
    logits = logits[:, :-1].to(torch.promote_types(logits.dtype, torch.float32))
    targets = ids[:, 1:].long()  # (B, T-1)
    # log softmax at the target only: logit - logsumexp, without a second (B, T-1, V) tensor of log-probabilities
    token_logps = logits.gather(-1, targets[..., None]).squeeze(-1) - logits.logsumexp(dim=-1)  # (B, T-1)
    scored = completion_mask[:, 1:].bool()  # (B, T-1): the first token is never scored
    total = token_logps.masked_fill(~scored, 0.0).sum(dim=1)  # (B,); masked_fill, so no stray inf or nan enters
    return total / scored.sum(dim=1) if average else total


def _check_loss_args(beta: float, loss_type: str) -> None:
    if loss_type not in LOSS_TYPES:
        raise ValueError(f"loss_type must be one of {LOSS_TYPES}, got {loss_type!r}")
    if not isinstance(beta, (int, float)) or isinstance(beta, bool) or not beta > 0:
        raise ValueError(f"beta must be a number > 0 (the strength of the pull towards the reference), got {beta!r}")


def dpo_loss(policy_chosen_logps: torch.Tensor, policy_rejected_logps: torch.Tensor,
             ref_chosen_logps: torch.Tensor, ref_rejected_logps: torch.Tensor,
             beta: float = 0.1, loss_type: str = "sigmoid") -> DPOOutput:
    """The preference loss of B pairs from their log-probabilities, each (B,) -> ``DPOOutput``.

    With h = (log πθ(y_w|x) - log πref(y_w|x)) - (log πθ(y_l|x) - log πref(y_l|x)), y_w chosen and y_l rejected:
      sigmoid (DPO):  L = -log σ(β h)          -F.logsigmoid(beta * logits)
      hinge (SLiC):   L = max(0, 1 - β h)       torch.relu(1 - beta * logits)
      ipo:            L = (h - 1 / (2β))²       (logits - 1 / (2 * beta)) ** 2
    IPO, as trl computes it, wants log-probabilities averaged over each completion's tokens: pass
    ``sequence_logprobs(..., average=True)`` (``dpo_batch_loss`` does). The rewards are then per token too."""
    _check_loss_args(beta, loss_type)
    logps = (policy_chosen_logps, policy_rejected_logps, ref_chosen_logps, ref_rejected_logps)
    shapes = [tuple(getattr(x, "shape", ())) for x in logps]
    if not all(isinstance(x, torch.Tensor) for x in logps) or len(set(shapes)) != 1 or len(shapes[0]) != 1:
        raise ValueError(f"the four log-probabilities must be tensors of one shape (B,), got shapes {shapes} "
                         "(policy chosen, policy rejected, reference chosen, reference rejected)")
    chosen_logratios = policy_chosen_logps - ref_chosen_logps  # (B,): log πθ(y_w|x) / πref(y_w|x)
    rejected_logratios = policy_rejected_logps - ref_rejected_logps  # (B,)
    logits = chosen_logratios - rejected_logratios  # (B,): h, how much more the policy moved towards y_w
    if loss_type == "sigmoid":
        losses = -F.logsigmoid(beta * logits)  # logsigmoid, not log(sigmoid): no underflow for large -h
    elif loss_type == "hinge":
        losses = torch.relu(1 - beta * logits)
    else:  # ipo: a squared loss towards the margin 1 / (2β), so h stays bounded instead of growing forever
        losses = (logits - 1 / (2 * beta)) ** 2
    chosen_rewards = beta * chosen_logratios.detach()  # (B,): DPO's implicit reward, up to a prompt-only term
    rejected_rewards = beta * rejected_logratios.detach()
    return DPOOutput(losses.mean(), chosen_rewards, rejected_rewards, chosen_rewards - rejected_rewards)


def _pad(rows: list[list[int]], width: int, value: int, side: str) -> torch.Tensor:
    """Lists of ints -> (len(rows), width) int64, padded with ``value`` on ``side``."""
    pads = [[value] * (width - len(r)) for r in rows]
    return torch.tensor([p + r if side == "left" else r + p for r, p in zip(rows, pads)], dtype=torch.long)


def preference_batch(pairs, pad_id: int = 0, padding_side: str = "right") -> PreferenceBatch:
    """[(prompt_ids, chosen_ids, rejected_ids), ...] (lists of ints) -> a ``PreferenceBatch`` of B pairs.

    Chosen and rejected rows are padded to one width T, the longest prompt + completion, so that they stack into
    one forward; ``padding_side`` "left" puts the padding before the prompt (the attention masks say where)."""
    if padding_side not in PADDING_SIDES:
        raise ValueError(f"padding_side must be one of {PADDING_SIDES}, got {padding_side!r}")
    pairs = [tuple(map(list, p)) for p in pairs]
    if not pairs or any(len(p) != 3 or not all(p) for p in pairs):
        raise ValueError("pairs must be a non-empty list of (prompt_ids, chosen_ids, rejected_ids), none of them "
                         "empty: a completion needs a prompt token before it")
    width = max(len(prompt) + max(len(c), len(r)) for prompt, c, r in pairs)
    fields = []
    for k in (1, 2):  # chosen, then rejected
        rows = [p[0] + p[k] for p in pairs]
        fields += [_pad(rows, width, pad_id, padding_side),
                   _pad([[0] * len(p[0]) + [1] * len(p[k]) for p in pairs], width, 0, padding_side),
                   _pad([[1] * len(r) for r in rows], width, 0, padding_side)]
    return PreferenceBatch(*fields)


def _as_batch(batch) -> PreferenceBatch:
    """A PreferenceBatch, a tuple in its field order (a Trainer's slice of one) or a dict with its field names."""
    if isinstance(batch, Mapping):
        missing = [k for k in _REQUIRED if k not in batch]
        if missing:
            raise ValueError(f"the batch lacks {missing}: it needs {list(_REQUIRED)} and may hold "
                             "chosen_attention_mask and rejected_attention_mask (see preference_batch)")
        return PreferenceBatch(**{k: batch.get(k) for k in PreferenceBatch._fields})
    if isinstance(batch, (tuple, list)) and len(batch) == len(PreferenceBatch._fields):
        return PreferenceBatch(*batch)
    raise ValueError(f"batch must be a PreferenceBatch, a tuple of its {len(PreferenceBatch._fields)} fields "
                     f"{PreferenceBatch._fields} or a dict with those keys, got {type(batch).__name__}"
                     f"{f' of {len(batch)}' if isinstance(batch, (tuple, list)) else ''}")


def _stack_pairs(batch: PreferenceBatch):
    """ids, completion mask and attention mask (or None) of chosen rows then rejected rows: (2B, T) each."""
    shapes = {k: tuple(getattr(v, "shape", ())) for k, v in batch._asdict().items() if v is not None}
    if len(set(shapes.values())) != 1 or len(shapes["chosen_ids"]) != 2:
        raise ValueError(f"every field of the batch must have one shape (B, T), chosen and rejected padded to one "
                         f"width; got {shapes}")
    ids = torch.cat([batch.chosen_ids, batch.rejected_ids])  # (2B, T)
    completion = torch.cat([batch.chosen_completion_mask, batch.rejected_completion_mask])  # (2B, T)
    masks = (batch.chosen_attention_mask, batch.rejected_attention_mask)
    if all(m is None for m in masks):
        return ids, completion, None
    ones = torch.ones_like(batch.chosen_ids)  # a missing mask: that half has no padding
    return ids, completion, torch.cat([ones if m is None else m for m in masks])  # (2B, T)


def dpo_batch_loss(policy, reference, batch, beta: float = 0.1, loss_type: str = "sigmoid") -> DPOOutput:
    """``dpo_loss`` of a preference batch (see ``PreferenceBatch``) under a policy and a frozen reference.

    One forward per model over the 2B rows, chosen then rejected; the reference runs under no_grad, so only
    the policy learns. For IPO the log-probabilities are averaged per completion token, as trl does."""
    _check_loss_args(beta, loss_type)  # before two forwards, not after
    ids, completion, attention = _stack_pairs(_as_batch(batch))  # (2B, T) each
    average = loss_type == "ipo"
    policy_logps = sequence_logprobs(policy, ids, completion, attention, average)  # (2B,)
    with torch.no_grad():
        ref_logps = sequence_logprobs(reference, ids, completion, attention, average)  # (2B,)
    policy_chosen, policy_rejected = policy_logps.chunk(2)  # (B,) each: the rows were stacked chosen first
    ref_chosen, ref_rejected = ref_logps.chunk(2)
    return dpo_loss(policy_chosen, policy_rejected, ref_chosen, ref_rejected, beta, loss_type)


def make_loss_fn(reference, beta: float = 0.1, loss_type: str = "sigmoid"):
    """``loss_fn(model, batch) -> loss`` for ``qt.training.Trainer`` (chapter 15's seam): DPO against ``reference``,
    which is frozen here (eval mode, no gradients) so that neither dropout nor an optimizer ever touches it."""
    _check_loss_args(beta, loss_type)
    reference.eval().requires_grad_(False)

    def loss_fn(model, batch) -> torch.Tensor:
        return dpo_batch_loss(model, reference, batch, beta, loss_type).loss

    return loss_fn
