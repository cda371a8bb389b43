"""Chapter 16 exercises, solved."""
import torch
import torch.nn.functional as F


def sequence_logprob(logits: torch.Tensor, ids: torch.Tensor, completion_mask: torch.Tensor) -> torch.Tensor:
    logps = torch.log_softmax(logits[:, :-1].float(), dim=-1)  # (B, T-1, V): position t-1 predicts token t
    token_logps = logps.gather(-1, ids[:, 1:, None]).squeeze(-1)  # (B, T-1): log p(ids[t] | ids[<t])
    scored = completion_mask[:, 1:].bool()  # (B, T-1): the mask of the targets, ids[:, 1:]
    return token_logps.masked_fill(~scored, 0.0).sum(dim=1)  # (B,): a sum over the completion's tokens


def dpo_loss(policy_chosen: torch.Tensor, policy_rejected: torch.Tensor, ref_chosen: torch.Tensor,
             ref_rejected: torch.Tensor, beta: float) -> torch.Tensor:
    h = (policy_chosen - ref_chosen) - (policy_rejected - ref_rejected)  # (B,)
    return -F.logsigmoid(beta * h).mean()  # logsigmoid: finite even for very negative beta * h


def implicit_rewards(policy_logps: torch.Tensor, ref_logps: torch.Tensor, beta: float) -> torch.Tensor:
    return beta * (policy_logps - ref_logps)


def reward_accuracy(chosen_rewards: torch.Tensor, rejected_rewards: torch.Tensor) -> float:
    return (chosen_rewards > rejected_rewards).float().mean().item()  # strictly: a tie is not a success
