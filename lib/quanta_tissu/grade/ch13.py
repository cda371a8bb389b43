"""Checks for chapter 13's exercises (data parallelism), against ``qt.training.distributed``."""
import torch

from .core import CheckFailed, assert_close


def check_shard_rows(fn) -> str:
    for batch, world in ((8, 2), (12, 3), (5, 1)):
        shards = [fn(batch, r, world) for r in range(world)]
        if any(not isinstance(s, slice) for s in shards):
            raise CheckFailed(f"shard_rows({batch}, r, {world}) should return a slice, got {type(shards[0]).__name__}")
        rows = [list(range(batch))[s] for s in shards]
        if sorted(sum(rows, [])) != list(range(batch)):
            raise CheckFailed(f"the shards of a batch of {batch} over {world} ranks should cover every row once, got "
                              f"{rows}")
        if any(r != list(range(i * batch // world, (i + 1) * batch // world)) for i, r in enumerate(rows)):
            raise CheckFailed(f"rank r takes the contiguous rows r*b..(r+1)*b-1; got {rows} for a batch of {batch} "
                              f"over {world} ranks (strided shards also split the data, but not the way the Trainer "
                              "does, so a run would not match one process row for row)")
    try:
        fn(10, 0, 4)
    except ValueError:
        return "contiguous, equal shares; 10 rows over 4 ranks refused"
    raise CheckFailed("shard_rows(10, 0, 4) should raise ValueError: 10 rows do not split evenly over 4 ranks "
                      "(silently dropping rows changes the global batch)")


def _allreduce_in_rank(world, path):
    from .core import load_learner_module

    fn = load_learner_module(path).allreduce_mean
    mine = torch.arange(4.0) * (world.rank + 1)
    given = mine.clone()
    out = fn(mine)
    import torch.distributed as dist

    gathered = [None] * world.size
    dist.all_gather_object(gathered, (None if out is None else torch.as_tensor(out).tolist(),
                                      torch.equal(mine, given)))
    return gathered


def check_allreduce_mean(fn) -> str:
    from ..training.distributed import run_local

    try:
        results = run_local(_allreduce_in_rank, 2, fn.__code__.co_filename)
    except Exception as exc:  # noqa: BLE001 - a rank failed: report what it raised
        text = str(exc)
        if "NotImplementedError" in text:
            raise NotImplementedError from None
        raise CheckFailed("a rank raised: " + text.strip().splitlines()[-1]) from None
    expected = (torch.arange(4.0) * 1.5).tolist()  # ranks hold x and 2x: the mean is 1.5x
    for rank, (out, untouched) in enumerate(results):
        if out is None:
            raise CheckFailed(f"rank {rank} got None: return the mean")
        if out == (torch.arange(4.0) * 3).tolist():
            raise CheckFailed("that is the sum over the ranks: divide by the world size for the mean")
        if not untouched:
            raise CheckFailed("the tensor passed in was changed: all_reduce works in place, so reduce a copy")
        assert_close(out, expected, f"rank {rank}'s result")
    return "2 gloo processes: both get the mean, inputs untouched"


def check_zero_bytes_per_rank(fn) -> str:
    from ..training.distributed import zero_bytes_per_parameter

    psi, n = 7_500_000_000, 64
    for stage in range(4):
        expected = psi * zero_bytes_per_parameter(stage, n)
        got = fn(psi, n, stage)
        if got is None:
            raise CheckFailed("zero_bytes_per_rank returned None")
        if stage == 0 and abs(got - 4 * psi) < 1:
            raise CheckFailed("stage 0 holds 16 bytes per parameter: the 12 of optimizer state (fp32 weights, Adam's "
                              "two moments) count too")
        if stage == 1 and abs(got - psi * (2 + 2 / n + 12 / n)) < 1:
            raise CheckFailed("stage 1 splits only the optimizer state; the gradients are split from stage 2")
        assert_close(got, expected, f"zero_bytes_per_rank(7.5e9, 64, stage={stage})", rtol=1e-9)
    return "stages 0-3 for the paper's 7.5B parameters on 64 ranks (120 GB, 31.4 GB, 16.6 GB, 1.9 GB)"


CHECKS = {
    "shard_rows": check_shard_rows,
    "allreduce_mean": check_allreduce_mean,
    "zero_bytes_per_rank": check_zero_bytes_per_rank,
}
