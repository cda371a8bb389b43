"""The training loop (chapter 07): AdamW, warmup + cosine schedule (or WSD, chapter 08), accumulation, clipping,
evaluation, checkpoints with exact resume, a progress bar and a JSON-lines metrics file.

Chapter 12 adds execution switches to ``TrainConfig``, seams of this one loop rather than forks of it:
``precision`` (autocast to bf16 or fp16, with loss scaling for fp16, ``qt.precision``), ``attention``
("manual" or "sdpa"), ``checkpointing`` (activation checkpointing) and ``compile`` (``torch.compile``).
Chapter 13 adds ``strategy`` (``qt.training.distributed``): under torchrun, N processes each take 1/N of every
global batch and train one model with DDP, ZeRO or FSDP; only rank 0 logs and writes checkpoints, which hold the
whole state in one format, so a run resumes on any number of processes.
Chapter 15 adds three seams for training something other than next-token loss on every weight: ``loss_fn(model,
batch)`` (default ``next_token_loss``; ``data`` is anything with ``get_batch``), the trainable parameters (those
with ``requires_grad``: LoRA freezes the rest, and the optimizer only sees what trains), and checkpoints that hold
only those parameters (``trainable_only``), so an adapter's checkpoint is kilobytes and resumes exactly."""
from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from tqdm.auto import tqdm

from ..attention import BACKENDS
from ..gpt import GPT, GPTConfig
from ..precision import LossScaler, autocast, check_precision
from . import checkpoint
from .data import TokenData
from .distributed import (STRATEGIES, World, check_strategy, full_optimizer_state, load_optimizer_state,
                          make_optimizer, wrap)
from .optim import cosine_lr, wsd_lr


SCHEDULES = ("cosine", "wsd")  # the learning-rate shapes TrainConfig.schedule names
EXECUTION = {"precision": "fp32", "attention": "manual", "checkpointing": False, "compile": False,  # chapter 12
             "strategy": "none"}  # chapter 13


@dataclass
class TrainConfig:
    """How to train. Presets: ``shakespeare_char`` (nanoGPT's CPU recipe), ``smoke`` (seconds)."""

    max_steps: int = 2000  # optimizer steps
    batch_size: int = 12  # sequences per micro-batch
    grad_accum: int = 1  # micro-batches per optimizer step (effective batch = batch_size * grad_accum)
    lr: float = 1e-3  # peak learning rate, reached after warmup
    min_lr: float = 1e-4  # learning rate at the end of the decay
    warmup: int = 100  # steps of linear warmup
    schedule: str = "cosine"  # after warmup: "cosine" decay (chapter 07) or "wsd", flat then a linear cooldown (chapter 08)
    cooldown: float = 0.4  # "wsd" only: the fraction of max_steps spent decaying to min_lr
    weight_decay: float = 0.1  # AdamW decay, applied to matrices only (not biases, gains, embeddings' norms)
    betas: tuple = (0.9, 0.99)  # AdamW moment decay rates
    grad_clip: float = 1.0  # max global gradient norm; 0 disables clipping
    eval_every: int = 250  # steps between evaluations (and at the last step)
    eval_iters: int = 20  # batches averaged per evaluation, per split
    ckpt_every: int = 0  # steps between checkpoints; 0: only at the end (when an out_dir is given)
    seed: int = 1337  # seeds the data order; Trainer.build also seeds the initial weights and dropout with it
    # chapter 12: how each step runs (``EXECUTION``); at their defaults a run is chapter 07's, bit for bit
    precision: str = "fp32"  # "fp32", or autocast to "bf16" or "fp16" (fp16 adds loss scaling)
    attention: str = "manual"  # "manual" (chapter 06's attention written out) or "sdpa" (torch's fused kernel)
    checkpointing: bool = False  # recompute each block's activations in the backward: less memory, more time
    compile: bool = False  # torch.compile the model's forward: a one-off compile cost, then faster steps
    strategy: str = "none"  # chapter 13: "ddp", "zero" or "fsdp" under torchrun; batch_size is then the global batch

    def __post_init__(self):
        for f in ("max_steps", "batch_size", "grad_accum", "eval_iters"):
            if getattr(self, f) < 1:
                raise ValueError(f"TrainConfig.{f} must be >= 1, got {getattr(self, f)}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"TrainConfig.schedule must be one of {SCHEDULES}, got {self.schedule!r}")
        if not 0.0 < self.cooldown <= 1.0:
            raise ValueError(f"TrainConfig.cooldown is a fraction of the steps, in (0, 1]; got {self.cooldown}")
        if self.warmup > self.max_steps:
            raise ValueError(f"TrainConfig.warmup ({self.warmup}) exceeds max_steps ({self.max_steps})")
        self.betas = tuple(self.betas)
        check_precision(self.precision)
        if self.strategy not in STRATEGIES:
            raise ValueError(f"TrainConfig.strategy must be one of {STRATEGIES}, got {self.strategy!r}")
        if self.attention not in BACKENDS:
            raise ValueError(f"TrainConfig.attention must be one of {BACKENDS}, got {self.attention!r}")

    @classmethod
    def shakespeare_char(cls, **overrides) -> "TrainConfig":
        return cls(**overrides)

    @classmethod
    def shakespeare_llama(cls, **overrides) -> "TrainConfig":
        """Tuned for GPTConfig.shakespeare_llama in nanoGPT's CPU wall time (chapter 08)."""
        return cls(**{**dict(max_steps=2000, batch_size=24, lr=5e-3, min_lr=5e-4, warmup=20, weight_decay=0.0,
                             betas=(0.9, 0.95), schedule="wsd", cooldown=0.4),
                      **overrides})

    @classmethod
    def shakespeare_llama_10min(cls, **overrides) -> "TrainConfig":
        """For GPTConfig.shakespeare_llama_10min (chapter 08)."""
        return cls.shakespeare_llama(**{**dict(lr=3e-3, min_lr=3e-4, warmup=100, weight_decay=0.1),
                                        **overrides})

    @classmethod
    def smoke(cls, **overrides) -> "TrainConfig":
        return cls(**{**dict(max_steps=20, batch_size=4, warmup=2, eval_every=10, eval_iters=2), **overrides})


@dataclass
class History:
    """What a run recorded: per-step training losses, and evaluations."""

    steps: list = field(default_factory=list)
    loss: list = field(default_factory=list)
    lr: list = field(default_factory=list)
    eval_steps: list = field(default_factory=list)
    train_eval: list = field(default_factory=list)
    val_eval: list = field(default_factory=list)


def param_groups(model, weight_decay: float):
    """Decay 2-D weights (matrices, embeddings); leave biases and LayerNorm gains alone. Frozen parameters
    (``requires_grad`` False, chapter 15) are left out: the optimizer keeps no state for what never trains."""
    trainable = [p for p in model.parameters() if p.requires_grad]
    if not trainable:
        raise ValueError("the model has no trainable parameters (every requires_grad is False): nothing to train")
    decay = [p for p in trainable if p.dim() >= 2]
    other = [p for p in trainable if p.dim() < 2]
    return [{"params": decay, "weight_decay": weight_decay}, {"params": other, "weight_decay": 0.0}]


def next_token_loss(model, batch) -> torch.Tensor:
    """The default ``loss_fn``: mean cross-entropy of the next token, for a batch (x, y) of (B, T) ids."""
    x, y = batch
    return model(x, y)[1]


class Trainer:
    """Owns the model, optimizer, data generator and step counter of one run."""

    def __init__(self, model: GPT, data: TokenData, cfg: TrainConfig, out_dir=None, device: str = "cpu",
                 extra_config: dict | None = None, loss_fn=None, trainable_only: bool = False):
        if data.vocab_size > model.cfg.vocab_size:
            raise ValueError(f"the data has vocab_size {data.vocab_size} but the model only {model.cfg.vocab_size}")
        if data.block_size > model.cfg.block_size:
            raise ValueError(f"data windows of {data.block_size} tokens do not fit block_size {model.cfg.block_size}")
        self.world = World.current()  # chapter 13: rank 0 of 1 unless torchrun started several processes
        check_strategy(cfg.strategy, self.world)
        if cfg.batch_size % self.world.size:
            raise ValueError(f"TrainConfig.batch_size ({cfg.batch_size}) is the global batch, split over "
                             f"{self.world.size} processes: it must be a multiple of {self.world.size}")
        self.model, self.data, self.cfg, self.device = model.to(device), data, cfg, device  # the model itself
        self.out_dir = Path(out_dir) if out_dir else None
        self.extra_config = extra_config or {}
        self.loss_fn = loss_fn or next_token_loss  # chapter 15: what a batch costs, e.g. DPO's preference loss
        self.trainable_only = trainable_only  # chapter 15: checkpoints hold only what trains (an adapter)
        model.set_attention(cfg.attention)  # chapter 12: the switches of how each step runs
        model.checkpointing = cfg.checkpointing
        wrapped = wrap(model, cfg.strategy)  # chapter 13: DDP around it, or FSDP's shards; itself for "none"
        self.optimizer = make_optimizer(param_groups(model, cfg.weight_decay), cfg.strategy, lr=cfg.lr,
                                        betas=cfg.betas)
        self.forward = torch.compile(wrapped) if cfg.compile else wrapped  # compiled lazily, at the first step
        self.scaler = LossScaler(enabled=cfg.precision == "fp16")  # only fp16's narrow range needs it
        if self.world.size > 1:  # the same initial weights everywhere, then each rank its own dropout masks
            torch.manual_seed(cfg.seed + self.world.rank)
        self.generator = torch.Generator().manual_seed(cfg.seed)  # the data order; checkpointed
        self.step = 0
        self.history = History()

    @classmethod
    def build(cls, model_cfg: GPTConfig, data, cfg: TrainConfig, out_dir=None, device: str = "cpu",
              **kwargs) -> "Trainer":
        """Seed, model, trainer: the one way a run starts from ``cfg.seed`` (the zoo, the ablation study and the
        benchmarks all build their runs here), so the same config always starts from the same weights."""
        torch.manual_seed(cfg.seed)  # the initial weights, then dropout's stream
        return cls(GPT(model_cfg), data, cfg, out_dir, device, **kwargs)

    def lr_at(self, step: int) -> float:
        """The learning rate of ``step``, by the config's schedule."""
        c = self.cfg
        if c.schedule == "wsd":
            return wsd_lr(step, c.lr, c.min_lr, c.warmup, c.max_steps, c.cooldown)
        return cosine_lr(step, c.lr, c.min_lr, c.warmup, c.max_steps)

    # -- one step ---------------------------------------------------------------------------
    def train_step(self) -> float:
        lr = self.lr_at(self.step)  # cosine_lr unless the config names another schedule
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.model.train()
        total = 0.0
        for _ in range(self.cfg.grad_accum):
            batch = self._my_rows(*self.data.get_batch("train", self.cfg.batch_size, self.generator, self.device))
            with autocast(self.cfg.precision, self.device):  # chapter 12: nothing for fp32
                loss = self.loss_fn(self.forward, batch)
            self.scaler.scale(loss / self.cfg.grad_accum).backward()  # micro-batch gradients add up: average
            total += loss.item() / self.cfg.grad_accum
        total = self.world.mean(total)  # chapter 13: the loss of the whole global batch
        if self.cfg.grad_clip or self.world.size > 1:
            self.scaler.unscale_(self.optimizer)  # clip the true gradients, not the scaled ones
            self.scaler.found_inf = self.world.any(self.scaler.found_inf)  # every rank skips the same steps
        if self.cfg.grad_clip:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.grad_clip)
        self.scaler.step(self.optimizer)  # skipped if an fp16 gradient overflowed
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        self.step += 1
        self.history.steps.append(self.step)
        self.history.loss.append(total)
        self.history.lr.append(lr)
        return total

    def _my_rows(self, *batch: torch.Tensor) -> tuple:
        """This rank's rows of the global batch (chapter 13): every rank draws the same batch and keeps 1/N of it,
        so the data order is the single process's, whatever the number of processes."""
        rows = batch[0].size(0) // self.world.size
        mine = slice(self.world.rank * rows, (self.world.rank + 1) * rows)
        return tuple(t[mine] for t in batch)

    @torch.no_grad()
    def evaluate(self) -> dict:
        """Mean loss over ``eval_iters`` batches per split, from a fixed generator (same batches every time)."""
        self.model.eval()
        gen = torch.Generator().manual_seed(self.cfg.seed + 1)  # separate: evaluation never shifts the data order
        out = {}
        for split in ("train", "val"):
            with autocast(self.cfg.precision, self.device):
                losses = [self.loss_fn(self.model, self.data.get_batch(split, self.cfg.batch_size, gen, self.device))
                          .item() for _ in range(self.cfg.eval_iters)]
            out[split] = sum(losses) / len(losses)
        return out

    # -- the loop ---------------------------------------------------------------------------
    def fit(self, steps: int | None = None, progress: bool = True) -> History:
        """Train until ``max_steps`` (or ``steps`` more steps), evaluating, logging and checkpointing."""
        end = self.cfg.max_steps if steps is None else min(self.cfg.max_steps, self.step + steps)
        bar = tqdm(total=end - self.step, desc="training", disable=not (progress and self.world.is_main),
                   mininterval=0.5)
        tokens = self.cfg.batch_size * self.cfg.grad_accum * self.model.cfg.block_size
        start, first = time.perf_counter(), self.step
        while self.step < end:
            loss = self.train_step()
            record = {"step": self.step, "loss": loss, "lr": self.history.lr[-1],
                      "tokens_per_s": tokens * (self.step - first) / (time.perf_counter() - start)}
            if self.step % self.cfg.eval_every == 0 or self.step == self.cfg.max_steps:
                losses = self.evaluate()
                self.history.eval_steps.append(self.step)
                self.history.train_eval.append(losses["train"])
                self.history.val_eval.append(losses["val"])
                record.update(train_eval=losses["train"], val_eval=losses["val"])
                bar.set_postfix(loss=f"{loss:.3f}", val=f"{losses['val']:.3f}")
            self._log(record)
            if self.out_dir and ((self.cfg.ckpt_every and self.step % self.cfg.ckpt_every == 0) or self.step == end):
                self.save()
            bar.update(1)
        bar.close()
        return self.history

    def _log(self, record: dict) -> None:
        if self.out_dir and self.world.is_main:  # chapter 13: one log for the run, not one per process
            self.out_dir.mkdir(parents=True, exist_ok=True)
            with open(self.out_dir / "metrics.jsonl", "a") as f:
                f.write(json.dumps(record) + "\n")

    # -- checkpoints ------------------------------------------------------------------------
    def save(self) -> Path | None:
        """Write a checkpoint (rank 0 writes; with several processes every rank must call this)."""
        config = {"model": self.model.cfg.to_dict(), "train": asdict(self.cfg), **self.extra_config}
        optimizer = full_optimizer_state(self.model, self.optimizer, self.cfg.strategy)  # the whole state, by name
        model = self._full_model()
        path = None
        if self.world.is_main:
            state = {"step": self.step, "optimizer": optimizer,
                     "generator": self.generator.get_state(), "torch_rng": torch.get_rng_state(),
                     "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
                     "history": asdict(self.history), "scaler": self.scaler.state_dict()}
            path = checkpoint.save(self.out_dir, self.step, model, config, state, trainable_only=self.trainable_only)
        self.world.barrier()  # no rank runs ahead of a checkpoint being written
        return path

    def _full_model(self) -> GPT:
        """The model with whole tensors: itself, unless FSDP sharded it (then gathered, on rank 0)."""
        if self.cfg.strategy != "fsdp":
            return self.model
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

        weights = get_model_state_dict(self.model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
        if not self.world.is_main:
            return None
        full = GPT(self.model.cfg).to(next(iter(weights.values())).dtype)
        full.load_state_dict(weights)
        return full

    @classmethod
    def resume(cls, out_dir, data: TokenData, device: str = "cpu", max_steps: int | None = None,
               strategy: str | None = None, model: GPT | None = None, loss_fn=None) -> "Trainer":
        """Rebuild a run from its latest checkpoint; training then continues exactly (on one process; under
        another number of processes, ``strategy``, continues with the same data and state). A checkpoint of
        trainable parameters only (chapter 15) needs ``model``: the frozen base, with its adapters, built as for
        the first run; ``loss_fn`` is the run's, if it was not the default."""
        config = checkpoint.read_config(out_dir)
        overrides = {**({"max_steps": max_steps} if max_steps else {}), **({"strategy": strategy} if strategy else {})}
        train_cfg = TrainConfig(**{**config["train"], **overrides})
        trainable_only = config.get("trainable_only", False)
        if model is None and trainable_only:
            raise checkpoint.CheckpointError(f"the checkpoint at {out_dir} holds only the trainable parameters (an "
                                             "adapter): pass model=, the frozen base with its adapters, to resume")
        if model is None:
            model = GPT(GPTConfig(**config["model"])).to(checkpoint.weights_dtype(out_dir))
        checkpoint.load_weights(model, out_dir, trainable_only=trainable_only)
        extra = {k: v for k, v in config.items() if k not in ("model", "train", "trainable_only")}
        trainer = cls(model, data, train_cfg, out_dir, device, extra, loss_fn=loss_fn, trainable_only=trainable_only)
        state = checkpoint.load_state(out_dir)
        if all(isinstance(k, int) for k in state["optimizer"]["state"]):  # written before chapter 13: by position
            trainer.optimizer.load_state_dict(state["optimizer"])
        else:
            load_optimizer_state(trainer.model, trainer.optimizer, train_cfg.strategy, state["optimizer"])
        trainer.generator.set_state(state["generator"])
        torch.set_rng_state(state["torch_rng"])
        if state["cuda_rng"] is not None and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda_rng"])
        if "scaler" in state:  # written since chapter 12
            trainer.scaler.load_state_dict(state["scaler"])
        trainer.step = state["step"]
        trainer.history = History(**state["history"])
        return trainer


def train_replica(world, data_folder, model_fields: dict, train_fields: dict, out_dir=None, dtype: str = "float32",
                  resume: bool = False) -> dict:
    """One process's part of a run (chapter 13; ``distributed.run_local`` starts them): the model from the seed
    (in ``dtype``), the Trainer (or, with ``resume``, the run in ``out_dir`` continued to ``max_steps``), ``fit``.
    Rank 0 gets the whole trained weights, the loss history, every rank's bytes of optimizer state, and the
    seconds ``fit`` took."""
    import torch.distributed as dist

    data = TokenData(data_folder, model_fields["block_size"])
    if resume:
        trainer = Trainer.resume(out_dir, data, max_steps=train_fields.get("max_steps"),
                                 strategy=train_fields.get("strategy", "none"))
    else:
        torch.manual_seed(train_fields.get("seed", TrainConfig.seed))  # the same initial weights on every rank
        model = GPT(GPTConfig(**model_fields)).to(getattr(torch, dtype))
        trainer = Trainer(model, data, TrainConfig(**train_fields), out_dir)
    start = time.perf_counter()
    history = trainer.fit(progress=False)
    seconds = time.perf_counter() - start
    from .distributed import optimizer_state_bytes

    state_bytes = [optimizer_state_bytes(trainer.optimizer)]
    if world.size > 1:
        gathered = [None] * world.size
        dist.all_gather_object(gathered, state_bytes[0])
        state_bytes = gathered
    full = trainer._full_model()
    if not world.is_main:
        return None
    return {"weights": {k: v.detach().clone() for k, v in full.state_dict().items()}, "loss": history.loss,
            "optimizer_bytes": state_bytes, "seconds": seconds}
