"""Chapter 13 exercises: a batch split over ranks, an all-reduce average by hand, and ZeRO's memory formula.

Fill in each function, then check your work from the course folder:

    python -m quanta_tissu.grade 13

The grader runs ``allreduce_mean`` in two real processes joined by torch.distributed (gloo).
"""
import torch
import torch.distributed as dist


def shard_rows(batch_size: int, rank: int, world_size: int) -> slice:
    """The rows of a global batch that process ``rank`` of ``world_size`` trains on: contiguous, equal shares, rank 0
    first. With b = batch_size / world_size, return slice(r * b, (r + 1) * b) (rows r*b to (r+1)*b - 1 inclusive).
    If batch_size is not a multiple of world_size, raise ValueError."""
    raise NotImplementedError


def allreduce_mean(tensor: torch.Tensor) -> torch.Tensor:
    """Called on every rank of an initialised process group with this rank's tensor (same shape everywhere).
    Return the element-wise mean over all ranks, on every rank. Use dist.all_reduce (it sums in place) and
    dist.get_world_size(); do not modify the tensor you were given."""
    raise NotImplementedError


def zero_bytes_per_rank(parameters: int, ranks: int, stage: int) -> float:
    """Bytes each rank holds for mixed-precision Adam training under ZeRO ``stage`` (0 is plain DDP): 2 bytes per
    parameter of 16-bit weights, 2 of 16-bit gradients, 12 of optimizer state (fp32 weights and Adam's two
    moments). Stage 1 splits the optimizer state over the ranks, stage 2 also the gradients, stage 3 also the
    weights."""
    raise NotImplementedError
