"""Chapter 08's measurements: the Llama-fication ablation, quality per CPU-minute, and the 10-minute best.

Parts (run one, or ``chapter08``: ``ablation``, ``versus`` and ``best``, the three that chapter 08 quotes):
- ``ablation``: the seven configurations of ``qt.training.ablation`` at nanoGPT's CPU size (4 layers,
  4 heads, 128 wide, context 64), each trained with the same recipe and steps; prints the table and
  writes ``benchmarks/results/ablation.json``, which chapter 08 plots.
- ``versus``: in one process, the vanilla GPT with nanoGPT's CPU recipe (2,000 steps) and the course's
  Llama preset (``GPTConfig.shakespeare_llama`` + ``TrainConfig.shakespeare_llama``) for the same
  wall-clock time, side by side: the vanilla trains a chunk of ``--chunk`` steps, then the Llama trains
  until its time catches up, so both see the same machine load (``--chunk 0``: the vanilla's whole run
  first, then the Llama's, the protocol of the first runs; ``--seed`` seeds both). Prints both validation
  losses and checks the Llama one is >= 0.25 nats lower; writes ``versus.json`` and appends the run to
  ``versus_runs.jsonl`` (every run is kept).
- ``best``: the course's best validation loss in 10 minutes of training on 2 cores
  (``GPTConfig.shakespeare_llama_10min``); nanoGPT's GPU figure for this dataset is 1.47.
- ``probe``: one run of the Llama preset for ``--seconds`` (or ``--steps``) with ``--model k=v`` /
  ``--train k=v`` overrides; appends its row to ``benchmarks/results/probes.jsonl`` (the tuning log).
- ``pace``: milliseconds per step of the vanilla GPT, the Llama preset and variants (``--model "k=v k=v"``
  per variant; model or recipe keys), their steps interleaved so that all see the same load; writes ``pace.json``.
- ``noise``: the preset trained for ``--steps`` (default 2200) from the usual seed, again with RMSNorm's
  backward by autograd (equal up to rounding), and from two other seeds; writes ``noise.json``: how far
  a single run's end point moves for reasons other than the recipe.
- ``schedule``: the preset with chapter 07's cosine and with the warmup-stable-decay schedule, the same
  ``--steps`` (default 2200) from three seeds each; writes ``schedule.json``.
Validation losses are averaged over the same 200 batches of 32 windows for every model.
``--smoke`` runs every part for two steps (or a second) into a temporary folder: it checks that they run.
Usage: python benchmarks/bench_llama.py {ablation,versus,best,probe,pace,noise,schedule,chapter08} [--threads 2]
       [--steps N] [--smoke]
"""
import argparse
import ast
import json
import math
import platform
import tempfile
import time
from pathlib import Path

import torch
from tqdm.auto import tqdm

import quanta_tissu as qt
from quanta_tissu.gpt import GPTConfig
from quanta_tissu.llama import RMSNorm, rms_norm_autograd
from quanta_tissu.training import ablation
from quanta_tissu.training.data import TokenData, prepare_char_corpus
from quanta_tissu.training.trainer import Trainer, TrainConfig

RESULTS = Path(__file__).parent / "results"
MARGIN = 0.25  # nats the Llama preset must gain over the vanilla recipe at equal wall time
NANOGPT_GPU_BEST = 1.47  # nanoGPT's README, the larger character model on a GPU


VAL_BATCHES = 200  # batches of 32 windows each validation loss averages (2 in a smoke run)


def val_loss(model, data, batches: int | None = None, batch_size: int = 32, seed: int = 2024) -> float:
    """Mean validation loss over fixed batches: the same windows for every model of a block size."""
    batches = batches or VAL_BATCHES
    gen = torch.Generator().manual_seed(seed)
    model.eval()
    with torch.no_grad():
        losses = [model(*data.get_batch("val", batch_size, gen))[1].item() for _ in range(batches)]
    return sum(losses) / len(losses)


LLAMA_CODE = "hand-written RMSNorm backward, leaner attention"  # what each versus run records of the Llama's code
CLOCKED = 10**6  # max_steps of a run that stops on the clock: the schedule's length is set as it goes
FIRST_ESTIMATE = 20  # steps taken before the pace is trusted to size the schedule


def seeded_trainer(model_cfg, train_cfg, data, **overrides) -> Trainer:
    """A fresh model and trainer; seeded first, so a config always starts from the same weights. The seed is
    the recipe's after ``overrides``: it draws both the initial weights and the batches."""
    fields = {**train_cfg.__dict__, **overrides}
    fields["warmup"] = min(fields["warmup"], fields["max_steps"])  # a short run (a smoke test) warms up less
    return Trainer.build(model_cfg, data, TrainConfig(**fields))


def size_schedule(trainer: Trainer, budget_s: float, elapsed_s: float) -> None:
    """Set the schedule's length to the steps that fit in ``budget_s`` at the pace so far, so the learning
    rate reaches its minimum as the time runs out."""
    if trainer.step >= FIRST_ESTIMATE:
        trainer.cfg.max_steps = max(trainer.step + 1, int(trainer.step * budget_s / elapsed_s))


def train_for(model_cfg, train_cfg, data, seconds: float, label: str) -> dict:
    """Train for ``seconds`` of wall time, the schedule re-sized every step from the pace so far."""
    trainer = seeded_trainer(model_cfg, train_cfg, data, max_steps=CLOCKED)
    bar = tqdm(total=round(seconds), desc=f"{label} (seconds)", mininterval=1.0)
    start = time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        size_schedule(trainer, seconds, elapsed)
        trainer.train_step()
        bar.update(min(round(seconds), int(time.perf_counter() - start)) - bar.n)
    bar.close()
    return _row(label, trainer, time.perf_counter() - start)


def train_side_by_side(vanilla: Trainer, llama: Trainer, chunk: int, labels) -> tuple[dict, dict]:
    """The vanilla trains ``chunk`` steps at a time to its ``max_steps``; after each chunk the Llama trains
    until its total time catches up with the vanilla's, so a change of machine load hits both. The Llama's
    schedule ends when the vanilla's projected total time does (the projection is exact after the last chunk)."""
    spent = {"vanilla": 0.0, "llama": 0.0}
    total = vanilla.cfg.max_steps
    for _ in tqdm(range(math.ceil(total / chunk)), desc=f"side by side, chunks of {chunk} vanilla steps"):
        start = time.perf_counter()
        for _ in range(min(chunk, total - vanilla.step)):
            vanilla.train_step()
        spent["vanilla"] += time.perf_counter() - start
        budget = spent["vanilla"] * total / vanilla.step  # the vanilla's whole run, at its pace so far
        start = time.perf_counter()
        while (elapsed := spent["llama"] + time.perf_counter() - start) < spent["vanilla"]:
            size_schedule(llama, budget, elapsed)
            llama.train_step()
        spent["llama"] += time.perf_counter() - start
    return _row(labels[0], vanilla, spent["vanilla"]), _row(labels[1], llama, spent["llama"])


def train_steps(model_cfg, train_cfg, data, label: str, **overrides) -> dict:
    """Train the recipe's ``max_steps`` (after ``overrides``, as in ``seeded_trainer``) and time them."""
    trainer = seeded_trainer(model_cfg, train_cfg, data, **overrides)
    start = time.perf_counter()
    trainer.fit()
    return _row(label, trainer, time.perf_counter() - start)


def _row(label, trainer: Trainer, wall) -> dict:
    model, cfg = trainer.model, trainer.cfg
    tokens = trainer.step * cfg.batch_size * cfg.grad_accum * model.cfg.block_size
    row = {"label": label, "params": model.num_parameters(), "steps": trainer.step, "wall_s": wall,
           "tokens_per_s": tokens / wall, "val": val_loss(model, trainer.data)}
    print(f"{label}: {row['params'] / 1e6:.2f}M parameters, {trainer.step} steps in {wall:.0f} s, "
          f"{row['tokens_per_s']:,.0f} tokens/s, validation loss {row['val']:.4f}", flush=True)
    return row


def machine() -> dict:
    return {"python": platform.python_version(), "torch": torch.__version__, "threads": torch.get_num_threads(),
            "processor": platform.processor() or platform.machine(), "date": time.strftime("%Y-%m-%d")}


def part_ablation(data_dir, args) -> bool:
    base = GPTConfig.shakespeare_char()
    steps = args.steps or 1000
    cfg = TrainConfig.shakespeare_char(max_steps=steps, eval_every=100, warmup=min(100, steps))
    data = TokenData(data_dir, base.block_size)
    results = ablation.run_ablation(base, cfg, data)
    print(f"\n{'configuration':36s} {'params':>8s} {'tokens/s':>9s} {'val loss':>9s}")
    for name, row in results.items():
        print(f"{name:36s} {row['params']:8,d} {row['tokens_per_s']:9,.0f} {row['final_val']:9.4f}")
    path = ablation.save_results(RESULTS / "ablation.json", results, recipe=cfg.__dict__, machine=machine())
    print(f"wrote {path}")
    return True


def part_versus(data_dir, args) -> bool:
    vanilla_cfg, llama_cfg = GPTConfig.shakespeare_char(), GPTConfig.shakespeare_llama()
    vanilla_train = TrainConfig.shakespeare_char(eval_every=10**9, seed=args.seed,
                                                 **({"max_steps": args.steps, "warmup": 1} if args.steps else {}))
    llama_train = TrainConfig.shakespeare_llama(eval_every=10**9, seed=args.seed)
    labels = "vanilla GPT, nanoGPT's CPU recipe", "Llama preset, same wall time"
    if args.chunk:  # side by side
        vanilla, llama = train_side_by_side(
            seeded_trainer(vanilla_cfg, vanilla_train, TokenData(data_dir, vanilla_cfg.block_size)),
            seeded_trainer(llama_cfg, llama_train, TokenData(data_dir, llama_cfg.block_size), max_steps=CLOCKED),
            args.chunk, labels)
    else:  # one after the other
        vanilla = train_steps(vanilla_cfg, vanilla_train, TokenData(data_dir, vanilla_cfg.block_size), labels[0])
        llama = train_for(llama_cfg, llama_train, TokenData(data_dir, llama_cfg.block_size), vanilla["wall_s"], labels[1])
    gain = vanilla["val"] - llama["val"]
    ok = gain >= MARGIN and llama["wall_s"] <= vanilla["wall_s"] * 1.05
    print(f"{'PASS' if ok else 'FAIL'}: the Llama preset is {gain:.3f} nats lower at "
          f"{llama['wall_s'] / vanilla['wall_s']:.2f}x the wall time (needs >= {MARGIN} at <= 1.05x)")
    host = machine()
    (RESULTS / "versus.json").write_text(json.dumps({"vanilla": vanilla, "llama": llama, "machine": host}, indent=1))
    run = {"date": host["date"], "preset": preset_summary(llama_cfg, llama_train),
           "budget_s": vanilla["wall_s"], "vanilla_val": vanilla["val"], "llama_params": llama["params"],
           "llama_steps": llama["steps"], "llama_val": llama["val"], "gain": gain,
           "protocol": f"side by side, chunks of {args.chunk}" if args.chunk else "one after the other",
           "llama_code": LLAMA_CODE, "seed": args.seed, "schedule": llama_train.schedule}
    with open(RESULTS / "versus_runs.jsonl", "a") as f:  # every run, kept: benchmarks/README.md tabulates them
        f.write(json.dumps(run) + "\n")
    return ok


def preset_summary(cfg, train_cfg) -> str:
    return (f"{cfg.n_layer}x{cfg.n_embd}, {cfg.n_head} heads, {cfg.n_kv_heads} kv heads, batch {train_cfg.batch_size}, "
            f"lr {train_cfg.lr:g}, warmup {train_cfg.warmup}, weight decay {train_cfg.weight_decay:g}, "
            + (f"wsd (cooldown {train_cfg.cooldown:g})" if train_cfg.schedule == "wsd" else "cosine"))


def part_best(data_dir, args) -> bool:
    cfg = GPTConfig.shakespeare_llama_10min()
    row = train_for(cfg, TrainConfig.shakespeare_llama_10min(eval_every=10**9), TokenData(data_dir, cfg.block_size),
                    args.minutes * 60, f"best in {args.minutes} minutes")
    print(f"the course's best validation loss in {args.minutes} CPU minutes: {row['val']:.4f} "
          f"(nanoGPT's GPU figure: {NANOGPT_GPU_BEST}; gap {row['val'] - NANOGPT_GPU_BEST:+.3f} nats)")
    (RESULTS / "best.json").write_text(json.dumps({**row, "model": cfg.to_dict(), "machine": machine()}, indent=1))
    return True


def part_probe(data_dir, args) -> bool:
    cfg = GPTConfig.shakespeare_llama(**_parse(args.model))
    train_cfg = TrainConfig.shakespeare_llama(eval_every=10**9, **_parse(args.train))
    label, data = f"probe {args.model} {args.train}", TokenData(data_dir, cfg.block_size)
    if args.steps:  # a fixed step count: comparable even when the machine is shared
        row = train_steps(cfg, train_cfg, data, label, max_steps=args.steps)
    else:
        row = train_for(cfg, train_cfg, data, args.seconds, label)
    row.update(model=cfg.to_dict(), train={**train_cfg.__dict__, "max_steps": row["steps"]},
               budget_s=None if args.steps else args.seconds)
    with open(RESULTS / "probes.jsonl", "a") as f:  # the tuning log (benchmarks/README.md)
        f.write(json.dumps(row) + "\n")
    return True


def part_pace(data_dir, args) -> bool:
    """Milliseconds per training step of Llama variants against the vanilla GPT, their steps interleaved so
    that every model sees the same machine load; ``--model`` overrides name the variants, one quoted "k=v k=v"
    string each (a TrainConfig key such as batch_size changes the variant's recipe)."""
    variants = {"vanilla GPT": (GPTConfig.shakespeare_char(), TrainConfig.shakespeare_char())}
    for spec in ["", *args.model]:  # a key of TrainConfig (batch_size) goes to the recipe, the others to the model
        pairs = _parse(spec.split())
        train = {k: v for k, v in pairs.items() if k in TrainConfig.__dataclass_fields__}
        model = {k: v for k, v in pairs.items() if k not in train}
        variants[f"Llama preset {spec}".strip()] = (GPTConfig.shakespeare_llama(**model),
                                                     TrainConfig.shakespeare_llama(**train))
    trainers = {k: Trainer.build(m, TokenData(data_dir, m.block_size), t) for k, (m, t) in variants.items()}
    rounds, warmup = (args.steps or 220), min(20, (args.steps or 220) // 2)  # the warm-up rounds are not timed
    seconds = dict.fromkeys(trainers, 0.0)
    for round_ in tqdm(range(rounds), desc="interleaved steps"):
        for name, trainer in trainers.items():
            start = time.perf_counter()
            trainer.train_step()
            seconds[name] += (time.perf_counter() - start) if round_ >= warmup else 0.0
    rows = {k: {"ms_per_step": 1e3 * v / (rounds - warmup), "vs_vanilla": v / seconds["vanilla GPT"]}
            for k, v in seconds.items()}
    for name, row in rows.items():
        print(f"{name:40s} {row['ms_per_step']:6.1f} ms/step, {row['vs_vanilla']:.3f}x the vanilla's")
    (RESULTS / "pace.json").write_text(json.dumps({"rows": rows, "machine": machine()}, indent=1))
    return True


def part_noise(data_dir, args) -> bool:
    """How far one run's end point moves for reasons that are not the recipe. The preset trains for the same
    steps: from the usual seed; again with RMSNorm's backward by autograd instead of by hand (the same
    arithmetic up to rounding, about 1e-7); and from two other seeds (other initial weights and batches)."""
    cfg = GPTConfig.shakespeare_llama()
    steps = args.steps or 2200
    train_cfg = TrainConfig.shakespeare_llama(eval_every=10**9, max_steps=steps, warmup=min(20, steps))
    base = train_cfg.seed
    rows = {}
    for seed, backward in [(base, "by hand"), (base, "autograd"), (base + 1, "by hand"), (base + 2, "by hand")]:
        label = f"seed {seed}" + (", RMSNorm backward by autograd" if backward == "autograd" else "")
        trainer = seeded_trainer(cfg, train_cfg, TokenData(data_dir, cfg.block_size), seed=seed)
        if backward == "autograd":  # the formula instead of RMSNormFunction: autograd differentiates it
            for norm in [m for m in trainer.model.modules() if isinstance(m, RMSNorm)]:
                norm.forward = lambda x, norm=norm: rms_norm_autograd(x, norm.weight, norm.eps)
        start = time.perf_counter()
        trainer.fit()
        rows[label] = {**_row(label, trainer, time.perf_counter() - start), "seed": seed, "init_seed": seed,
                       "rmsnorm_backward": backward, "schedule": train_cfg.schedule}
    (RESULTS / "noise.json").write_text(json.dumps({"rows": rows, "machine": machine()}, indent=1))
    return True


def part_schedule(data_dir, args) -> bool:
    """Chapter 07's cosine against warmup-stable-decay on the preset: the same steps from three seeds each. The
    comparison is paired by seed, since another seed moves a run by more than the schedule does (``noise``)."""
    cfg = GPTConfig.shakespeare_llama()
    steps = args.steps or 2200
    train_cfg = TrainConfig.shakespeare_llama(eval_every=10**9, max_steps=steps, warmup=min(20, steps))
    rows = {}
    for seed in (train_cfg.seed, train_cfg.seed + 1, train_cfg.seed + 2):
        for schedule in ("cosine", "wsd"):
            label = f"seed {seed}, {schedule}"
            row = train_steps(cfg, train_cfg, TokenData(data_dir, cfg.block_size), label, seed=seed, schedule=schedule)
            rows[label] = {**row, "seed": seed, "schedule": schedule}
    (RESULTS / "schedule.json").write_text(json.dumps({"rows": rows, "train": train_cfg.__dict__, "machine": machine()},
                                                      indent=1))
    return True


def _parse(pairs):
    return {k: ast.literal_eval(v) for k, v in (p.split("=", 1) for p in pairs)}


PARTS = ("ablation", "versus", "best", "probe", "pace", "noise", "schedule")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("part", choices=[*PARTS, "chapter08"])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=0,
                        help="ablation: steps per configuration (default 1000); versus: the vanilla's steps (default "
                             "2000); probe: fixed steps instead of --seconds; "
                             "pace: interleaved rounds (default 220); noise, schedule: steps per run (default 2200)")
    parser.add_argument("--chunk", type=int, default=100,
                        help="versus: vanilla steps per turn, side by side (0: one run after the other)")
    parser.add_argument("--seed", type=int, default=TrainConfig().seed,
                        help="versus: the seed of both models' weights and batches (default: the course's)")
    parser.add_argument("--minutes", type=float, default=10.0, help="best: training minutes")
    parser.add_argument("--seconds", type=float, default=144.0, help="probe: training seconds")
    parser.add_argument("--model", nargs="*", default=[],
                        help="probe: GPTConfig overrides k=v; pace: one quoted \"k=v k=v\" string per variant")
    parser.add_argument("--train", nargs="*", default=[], help="probe: TrainConfig overrides k=v")
    parser.add_argument("--smoke", action="store_true", help="every part, two steps each, results in a temporary folder")
    args = parser.parse_args(argv)
    global RESULTS, VAL_BATCHES
    qt.setup(seed=1337, threads=args.threads)
    data_dir, _ = prepare_char_corpus(Path(tempfile.mkdtemp()) / "shakespeare_char")
    if args.smoke:  # two steps of everything, nothing written where results live
        RESULTS = Path(tempfile.mkdtemp(prefix="bench-llama-smoke-"))
        args.steps, args.seconds, args.minutes, args.chunk = 2, 1.0, 1 / 60, 1
        VAL_BATCHES = 2
        parts = list(PARTS)
    else:
        parts = ["ablation", "versus", "best"] if args.part == "chapter08" else [args.part]
    RESULTS.mkdir(exist_ok=True)
    ok = [globals()[f"part_{p}"](data_dir, args) for p in parts]
    if args.smoke:
        print(f"smoke: every part ran ({', '.join(parts)})")
        return 0  # two steps cannot meet the versus margin: the smoke run only checks that the parts run
    return 0 if all(ok) else 1


if __name__ == "__main__":
    raise SystemExit(main())
