"""Chapter 13: data-parallel training on torch.distributed (gloo, 2 processes on this machine) gives the single
process's result: DDP, ZeRO and FSDP, gradient accumulation, resuming across world sizes, bad input and faults."""
import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from quanta_tissu.gpt import GPT, GPTConfig
from quanta_tissu.training import data, distributed
from quanta_tissu.training.trainer import TrainConfig, Trainer, train_replica

MODEL = GPTConfig.tiny(vocab_size=40, n_embd=32, dropout=0.0).to_dict()
TRAIN = dict(max_steps=100, batch_size=8, warmup=5, eval_every=100, eval_iters=2, lr=3e-3)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    ids = np.cumsum(np.random.default_rng(0).integers(1, 4, 6000)) % 40
    return data.prepare(ids[:5400], ids[5400:], tmp_path_factory.mktemp("data"), vocab_size=40, tokenizer="test")


@pytest.fixture(scope="module")
def single(folder):
    """The reference: one process, float64 (so that what differs is the algorithm, not the rounding)."""
    return train_replica(distributed.World(), folder, MODEL, TRAIN, dtype="float64")


def _gap(a, b):
    return max((a["weights"][k] - b["weights"][k]).abs().max().item() for k in a["weights"])


@pytest.mark.parametrize("strategy", ["ddp", "zero", "fsdp"])
def test_two_processes_match_one(folder, single, strategy):
    two = distributed.run_local(train_replica, 2, folder, MODEL, {**TRAIN, "strategy": strategy}, None, "float64")
    assert _gap(two, single) < 1e-6, f"{strategy}: weights after 100 steps differ from one process's"
    assert max(abs(a - b) for a, b in zip(two["loss"], single["loss"])) < 1e-9
    total, per_rank = single["optimizer_bytes"][0], two["optimizer_bytes"]
    if strategy == "ddp":
        assert per_rank == [total, total]  # every rank keeps the whole optimizer state
    else:  # ZeRO and FSDP: each rank keeps its share (FSDP pads its shards to equal sizes: a few bytes more)
        assert abs(sum(per_rank) - total) < 0.01 * total and max(per_rank) <= 0.6 * total, per_rank


def test_gradient_accumulation_on_one_process_equals_two_process_ddp(folder):
    accumulated = train_replica(distributed.World(), folder, MODEL, {**TRAIN, "max_steps": 20, "batch_size": 4,
                                                                    "grad_accum": 2}, dtype="float64")
    ddp = distributed.run_local(train_replica, 2, folder, MODEL, {**TRAIN, "max_steps": 20, "strategy": "ddp"},
                                None, "float64")
    assert _gap(accumulated, ddp) < 1e-9


@pytest.mark.parametrize("first, then, strategy", [(2, 1, "ddp"), (1, 2, "ddp"), (2, 1, "fsdp"), (1, 2, "zero"),
                                                   (2, 1, "zero")])
def test_resume_on_another_number_of_processes(folder, tmp_path, first, then, strategy):
    """A checkpoint holds whole tensors by name, whatever wrote it: any strategy resumes it on any world size."""
    run = dict(TRAIN, max_steps=12, eval_every=6, ckpt_every=6)
    uninterrupted = train_replica(distributed.World(), folder, MODEL, run, dtype="float64")
    strategies = {1: "none", 2: strategy}
    start = {**run, "max_steps": 6, "strategy": strategies[first]}
    if first == 1:
        train_replica(distributed.World(), folder, MODEL, start, tmp_path / "run", "float64")
    else:
        distributed.run_local(train_replica, 2, folder, MODEL, start, tmp_path / "run", "float64")
    rest = {**run, "strategy": strategies[then]}
    if then == 1:
        resumed = train_replica(distributed.World(), folder, MODEL, rest, tmp_path / "run", resume=True)
    else:
        resumed = distributed.run_local(train_replica, 2, folder, MODEL, rest, tmp_path / "run", "float64", True)
    assert _gap(resumed, uninterrupted) < 1e-9
    lines = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["step"] for line in lines] == list(range(1, 13)), "one log line per step: rank 0 only"


def test_batch_must_divide_by_the_world_size(folder):
    with pytest.raises(Exception, match="must be a multiple of 2"):
        distributed.run_local(train_replica, 2, folder, MODEL, {**TRAIN, "batch_size": 3, "strategy": "ddp"})


def test_a_strategy_needs_torchrun(folder):
    with pytest.raises(ValueError, match="torchrun"):
        Trainer(GPT(GPTConfig(**MODEL)), data.TokenData(folder, 16),
                TrainConfig(**{**TRAIN, "strategy": "ddp"}))
    with pytest.raises(ValueError, match="strategy must be one of"):
        TrainConfig(strategy="horovod")


def crash_at_step_8(world, folder, out_dir):
    """Rank 1 dies after the checkpoint that ends fit(7), before step 8's all-reduce."""
    import os

    torch.manual_seed(0)
    model = GPT(GPTConfig(**MODEL))
    trainer = Trainer(model, data.TokenData(folder, 16), TrainConfig(**{**TRAIN, "max_steps": 12, "ckpt_every": 6,
                                                                       "strategy": "ddp"}), out_dir)
    trainer.fit(7, progress=False)
    if world.rank == 1:
        os._exit(3)  # no exception, no cleanup: as a killed process
    trainer.fit(progress=False)


def test_a_rank_that_dies_leaves_the_last_complete_checkpoint(folder, tmp_path):
    with pytest.raises(Exception, match="exit code 3|exited with code 3|process 1"):
        distributed.run_local(crash_at_step_8, 2, folder, tmp_path / "run")
    from quanta_tissu.training import checkpoint

    assert checkpoint.resolve(tmp_path / "run").name == "step-00000007"
    assert not list((tmp_path / "run").glob(".tmp-*")), "a half-written checkpoint was left behind"


@pytest.mark.parametrize("strategy", ["ddp", "fsdp"])
def test_torchrun_cli(tmp_path, strategy):
    """`torchrun --nproc_per_node=2 -m quanta_tissu train ... --strategy S`: one log, one checkpoint, resumable."""
    import quanta_tissu as qt
    from quanta_tissu.__main__ import main

    try:
        qt.data.corpus_path("tinyshakespeare", download=False)
    except qt.data.CorpusError as err:
        pytest.skip(str(err))
    data_dir, run_dir = str(tmp_path / "data"), str(tmp_path / "run")
    assert main(["prepare", "--out", data_dir]) == 0
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                "-m", "quanta_tissu", "train", "--data", data_dir, "--out", run_dir, "--preset", "tiny",
                "--max-steps", "4", "--batch-size", "4", "--threads", "1", "--strategy", strategy]
    out = subprocess.run(torchrun, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.count("validation loss") == 1, out.stdout  # rank 0 alone reports
    lines = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["step"] for line in lines] == [1, 2, 3, 4]
    assert main(["train", "--data", data_dir, "--out", run_dir, "--resume", "--max-steps", "5",
                 "--strategy", "none"]) == 0  # written by two processes, resumed by one
