"""Data-parallel training on torch.distributed (chapter 13): N processes, one Trainer, the single process's result.

Does:
- ``STRATEGIES``: "none" (one process); "ddp" (``DistributedDataParallel``: every rank holds the whole model and
  optimizer, and the gradients are averaged by an all-reduce during the backward pass); "zero" (DDP plus
  ``ZeroRedundancyOptimizer``: each rank keeps and updates 1/N of the optimizer state, ZeRO stage 1); "fsdp"
  (FSDP2's ``fully_shard``: parameters, gradients and optimizer state all split across ranks, ZeRO stage 3).
- ``World``: this process's rank and the world size, from an initialised process group or else one process;
  ``start`` initialises it from torchrun's environment (gloo on CPU, NCCL on CUDA).
- ``wrap`` and ``make_optimizer``: the module to call and the optimizer, for a strategy.
- ``full_optimizer_state`` and ``load_optimizer_state``: the optimizer state in one format for every strategy and
  world size (the whole state, keyed by parameter name), so a checkpoint written by N ranks resumes on M.
- ``zero_bytes_per_parameter``: the ZeRO paper's memory accounting per parameter, by stage.
Does not: implement any collective (torch.distributed does), or split one model across ranks by layers or by
matrices (pipeline and tensor parallelism).
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

STRATEGIES = ("none", "ddp", "zero", "fsdp")


@dataclass
class World:
    """Where this process stands: rank r of ``size`` processes (rank 0 is the one that logs and writes)."""

    rank: int = 0
    size: int = 1

    @classmethod
    def current(cls) -> "World":
        if dist.is_available() and dist.is_initialized():
            return cls(dist.get_rank(), dist.get_world_size())
        return cls()

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def mean(self, value: float) -> float:
        """The mean of a number over all ranks (every rank gets it)."""
        if self.size == 1:
            return value
        t = torch.tensor([value], dtype=torch.float64)
        dist.all_reduce(t)
        return t.item() / self.size

    def any(self, flag: bool) -> bool:
        """True on every rank if it is True on any."""
        if self.size == 1:
            return flag
        t = torch.tensor([float(flag)])
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return bool(t.item())

    def barrier(self) -> None:
        if self.size > 1:
            dist.barrier()


def start(device: str = "cpu", timeout_s: float = 120.0) -> World:
    """Join the process group torchrun describes (RANK, WORLD_SIZE, MASTER_ADDR...); one process without it.

    A rank that dies leaves the others waiting in a collective: ``timeout_s`` bounds that wait."""
    import datetime

    if "WORLD_SIZE" not in os.environ or int(os.environ["WORLD_SIZE"]) == 1 or dist.is_initialized():
        return World.current()
    backend = "nccl" if torch.device(device).type == "cuda" else "gloo"
    dist.init_process_group(backend, timeout=datetime.timedelta(seconds=timeout_s))
    if backend == "nccl":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
    return World.current()


def check_strategy(strategy: str, world: World) -> None:
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy must be one of {STRATEGIES}, got {strategy!r}")
    if strategy != "none" and world.size == 1 and not dist.is_initialized():
        raise ValueError(f"strategy {strategy!r} needs torch.distributed: run under torchrun, e.g. "
                         f"`torchrun --nproc_per_node=2 -m quanta_tissu train ... --strategy {strategy}`")


def wrap(model: torch.nn.Module, strategy: str) -> torch.nn.Module:
    """The module the training step calls. DDP wraps; FSDP shards the model in place, block by block."""
    if strategy in ("ddp", "zero"):
        from torch.nn.parallel import DistributedDataParallel

        return DistributedDataParallel(model)
    if strategy == "fsdp":
        from torch.distributed.fsdp import fully_shard

        for block in model.blocks:  # each block's parameters are gathered just before it runs, then freed
            fully_shard(block)
        fully_shard(model, reshard_after_forward=True)  # the rest (embeddings, norm, head); sharded again after
        # every forward, evaluation's included, so the optimizer always finds the sharded parameters it holds
    return model


def make_optimizer(groups, strategy: str, **adamw):
    """AdamW over ``groups`` (parameter groups); with "zero", each rank keeps the state of its share only."""
    if strategy == "zero":
        from torch.distributed.optim import ZeroRedundancyOptimizer

        return ZeroRedundancyOptimizer(groups, optimizer_class=torch.optim.AdamW, **adamw)
    return torch.optim.AdamW(groups, **adamw)


def _param_names(model: torch.nn.Module, optimizer) -> list:
    """The names of the optimizer's parameters, in the order its state_dict numbers them."""
    names = {id(p): name for name, p in model.named_parameters()}
    return [names[id(p)] for g in optimizer.param_groups for p in g["params"]]


def full_optimizer_state(model, optimizer, strategy: str) -> dict | None:
    """The whole optimizer state keyed by parameter name, on rank 0 (None elsewhere). Every rank must call it."""
    if strategy == "fsdp":
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_optimizer_state_dict

        state = get_optimizer_state_dict(model, optimizer,
                                         options=StateDictOptions(full_state_dict=True, cpu_offload=True))
        return state if World.current().is_main else None
    if strategy == "zero":
        optimizer.consolidate_state_dict(to=0)  # gather every rank's share on rank 0
        if not World.current().is_main:
            return None
    state = optimizer.state_dict()
    by_index = _param_names(model, optimizer)
    return {"state": {by_index[i]: s for i, s in state["state"].items()},
            "param_groups": [{**g, "params": [by_index[i] for i in g["params"]]} for g in state["param_groups"]]}


def load_optimizer_state(model, optimizer, strategy: str, state: dict) -> None:
    """Load ``full_optimizer_state``'s dict (from any strategy and world size) into this rank's optimizer."""
    if strategy == "fsdp":
        from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict

        set_optimizer_state_dict(model, optimizer, state, options=StateDictOptions(full_state_dict=True))
        return
    index = {name: i for i, name in enumerate(_param_names(model, optimizer))}
    missing = set(index) ^ set(n for g in state["param_groups"] for n in g["params"])
    if missing:
        raise ValueError(f"the checkpoint's optimizer state does not fit this model: parameters {sorted(missing)} "
                         "differ")
    optimizer.load_state_dict({"state": {index[n]: s for n, s in state["state"].items()},
                               "param_groups": [{**g, "params": [index[n] for n in g["params"]]}
                                                for g in state["param_groups"]]})


def optimizer_state_bytes(optimizer) -> int:
    """Bytes of optimizer state this rank holds (for FSDP, its shards only)."""
    total = 0
    local = getattr(optimizer, "optim", optimizer)  # ZeroRedundancyOptimizer keeps its share in an inner optimizer
    for s in local.state.values():
        for v in s.values():
            if isinstance(v, torch.Tensor):
                local = v.to_local() if hasattr(v, "to_local") else v
                total += local.numel() * local.element_size()
    return total


def zero_bytes_per_parameter(stage: int, ranks: int, optimizer_bytes: int = 12) -> float:
    """Bytes per parameter on each rank, mixed-precision Adam (the ZeRO paper, section 5): 2 for fp16 weights,
    2 for fp16 gradients, K = 12 for the fp32 master weights and Adam's two moments. Stage 1 splits the
    optimizer state over the N ranks, stage 2 the gradients too, stage 3 the weights too; stage 0 is DDP."""
    if stage not in (0, 1, 2, 3):
        raise ValueError(f"ZeRO stage must be 0, 1, 2 or 3, got {stage}")
    weights, grads, opt = 2.0, 2.0, float(optimizer_bytes)
    if stage >= 1:
        opt /= ranks
    if stage >= 2:
        grads /= ranks
    if stage >= 3:
        weights /= ranks
    return weights + grads + opt


def _entry(rank: int, fn, size: int, init_file: str, out: str, threads: int, args) -> None:
    torch.set_num_threads(threads)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=size)
    try:
        result = fn(World(rank, size), *args)
        if rank == 0:
            torch.save(result, out)
    finally:
        dist.destroy_process_group()


def run_local(fn, size: int, *args, threads: int = 1):
    """Run ``fn(world, *args)`` in ``size`` new processes on this machine, joined by gloo (torchrun's job, for a
    notebook or a test); return rank 0's result. ``fn`` must be importable (defined in a module), and an
    exception in any rank is raised here with that rank's traceback."""
    import logging
    import tempfile

    import torch.multiprocessing as mp

    spawn_log = logging.getLogger("torch.multiprocessing.spawn")  # it warns as it stops the others: the error says it
    level = spawn_log.level
    spawn_log.setLevel(logging.ERROR)
    try:
        with tempfile.TemporaryDirectory(prefix="qt-dist-") as tmp:
            mp.spawn(_entry, args=(fn, size, f"{tmp}/init", f"{tmp}/result.pt", threads, args), nprocs=size)
            return torch.load(f"{tmp}/result.pt", weights_only=False)
    finally:
        spawn_log.setLevel(level)


def allreduce_seconds(world: World, sizes, rounds: int = 5) -> list:
    """Seconds of one all-reduce (sum) of ``n`` float32 numbers, best of ``rounds``, for each n in ``sizes``
    (for ``run_local``: every rank times it; rank 0's times are returned)."""
    import time

    times = []
    for n in sizes:
        t = torch.ones(int(n))
        dist.all_reduce(t)  # warm-up: the connection and the buffers
        best = float("inf")
        for _ in range(rounds):
            dist.barrier()
            start = time.perf_counter()
            dist.all_reduce(t)
            best = min(best, time.perf_counter() - start)
        times.append(best)
    return times
