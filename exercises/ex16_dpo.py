"""Chapter 16 exercises: a completion's log-probability, DPO's loss, its implicit rewards and their accuracy.

Fill in each function, then check your work from the course folder:

    python -m quanta_tissu.grade 16

Use torch only (no quanta_tissu, no trl): the point is to write the ideas yourself.

Conventions (trl's and ``qt.dpo``'s): a preference pair is a prompt x with a chosen completion y_w and a rejected
one y_l. The policy πθ learns; the reference πref is a frozen copy of the model we started from. Every
log-probability is log p(completion | prompt), a sum over the completion's tokens (the prompt is read, not scored).
"""
import torch


def sequence_logprob(logits: torch.Tensor, ids: torch.Tensor, completion_mask: torch.Tensor) -> torch.Tensor:
    """log p(completion | prompt) of each row -> (B,).

    logits (B, T, V) float: a causal model's output for ids, where logits[:, t] predicts the NEXT token, ids[:, t + 1].
    ids (B, T) int64: prompt then completion (then, perhaps, padding) in each row.
    completion_mask (B, T), 0/1 integers (or bool): 1 on the completion's tokens, 0 on the prompt and on padding.

    Return, for each row b, the sum over the completion tokens t (completion_mask[b, t] = 1) of
    log_softmax(logits[b, t - 1])[ids[b, t]]: the log-probability the model gave token t from what came before it.
    The first token of a row is never scored (nothing predicts it; every completion follows a prompt of at least
    one token). Sum, do not average; keep the gradient (the policy learns through this)."""
    raise NotImplementedError


def dpo_loss(policy_chosen: torch.Tensor, policy_rejected: torch.Tensor, ref_chosen: torch.Tensor,
             ref_rejected: torch.Tensor, beta: float) -> torch.Tensor:
    """DPO's loss of B pairs -> a 0-d tensor, the mean over the pairs.

    Each input is (B,): log πθ(y_w|x), log πθ(y_l|x), log πref(y_w|x), log πref(y_l|x), as ``sequence_logprob``
    gives them. With h = (log πθ(y_w|x) - log πref(y_w|x)) - (log πθ(y_l|x) - log πref(y_l|x)), a pair's loss is

        -log σ(β h)

    It is ln 2 at the start (policy = reference, h = 0) and falls as the policy moves towards the chosen
    completions, relative to the reference, faster than towards the rejected ones. Use torch.nn.functional.logsigmoid:
    log(torch.sigmoid(z)) becomes log 0 = -inf when z is very negative."""
    raise NotImplementedError


def implicit_rewards(policy_logps: torch.Tensor, ref_logps: torch.Tensor, beta: float) -> torch.Tensor:
    """DPO's implicit reward of each completion, (B,) -> (B,): β · (log πθ(y|x) - log πref(y|x)).

    How much more likely the policy makes the completion than the reference does, scaled by β (the reward that
    the policy is optimal for, up to a term that depends on the prompt alone). trl logs it as rewards/chosen and
    rewards/rejected."""
    raise NotImplementedError


def reward_accuracy(chosen_rewards: torch.Tensor, rejected_rewards: torch.Tensor) -> float:
    """The fraction of pairs whose chosen reward is strictly greater than their rejected one, as a float in [0, 1].

    chosen_rewards and rejected_rewards are (B,), pair b in position b (trl's rewards/accuracies). A tie is not a
    success: at step 0 the policy equals the reference, every reward is 0, and the accuracy is 0."""
    raise NotImplementedError
