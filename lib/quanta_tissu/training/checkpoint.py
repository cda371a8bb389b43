"""Checkpoints: one folder per save, made current by an atomic rename (chapter 07).

A checkpoint folder holds ``model.safetensors`` (weights), ``config.json`` (model and training
configs, tokenizer description), ``state.pt`` (optimizer, step, data-generator and RNG states) and
``manifest.json`` (file sizes, written last). Saving writes ``step-NNNNNNNN/`` completely, then
points the ``latest`` symlink at it with ``os.replace``: a crash at any moment leaves the previous
checkpoint intact and current. Loading checks the manifest, so a truncated file is named, not unpickled.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import torch

LATEST = "latest"


class CheckpointError(RuntimeError):
    """A checkpoint is missing, incomplete, corrupt or for another model; the message says which."""


def save(out_dir, step: int, model, config: dict, state: dict, keep: int = 2, trainable_only: bool = False) -> Path:
    """Write checkpoint ``step`` under ``out_dir`` and make it the latest; keep the last ``keep``.
    ``trainable_only`` (chapter 15) writes only the parameters that train, e.g. a LoRA adapter: kilobytes, and the
    frozen base comes from where it always comes from."""
    from safetensors.torch import save_file, save_model  # save_model handles tied weights (stored once)

    out = Path(out_dir)
    final = out / f"step-{step:08d}"
    tmp = out / f".tmp-step-{step:08d}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    if trainable_only:
        save_file({n: p.detach().contiguous() for n, p in model.named_parameters() if p.requires_grad},
                  str(tmp / "model.safetensors"))
    else:
        save_model(model, str(tmp / "model.safetensors"))
    (tmp / "config.json").write_text(json.dumps({**config, "trainable_only": trainable_only}, indent=1))
    torch.save(state, tmp / "state.pt")
    sizes = {f.name: f.stat().st_size for f in tmp.iterdir()}
    (tmp / "manifest.json").write_text(json.dumps(sizes))
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)  # the folder appears complete or not at all
    link = out / f".{LATEST}.tmp"
    link.unlink(missing_ok=True)
    link.symlink_to(final.name)
    os.replace(link, out / LATEST)  # atomic switch of the current checkpoint
    for old in sorted(out.glob("step-*"))[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def save_weights(folder, model, config: dict, files: dict[str, str] | None = None) -> Path:
    """Write a weights-only checkpoint (no optimizer state) into the new folder ``folder``: what the zoo ships.

    ``files``: more text files to keep with the weights, {name: text} (chapter 18: the BPE tokenizer)."""
    from safetensors.torch import save_model

    folder = Path(folder)
    folder.mkdir(parents=True)
    save_model(model, str(folder / "model.safetensors"))
    (folder / "config.json").write_text(json.dumps(config, indent=1))
    for name, text in (files or {}).items():
        (folder / name).write_text(text, encoding="utf-8")
    sizes = {f.name: f.stat().st_size for f in folder.iterdir()}
    (folder / "manifest.json").write_text(json.dumps(sizes))  # last: its presence means complete
    return folder


def resolve(path) -> Path:
    """A checkpoint folder: ``path`` itself, or its ``latest`` if ``path`` is a run folder."""
    path = Path(path)
    if (path / LATEST).exists():
        path = (path / LATEST).resolve()
    if not (path / "manifest.json").is_file():
        raise CheckpointError(f"no complete checkpoint at {path} (manifest.json missing): train first, or point "
                              f"to a run folder that has a '{LATEST}' link or to a step-NNNNNNNN folder")
    sizes = json.loads((path / "manifest.json").read_text())
    for name, size in sizes.items():
        actual = (path / name).stat().st_size if (path / name).is_file() else None
        if actual != size:
            raise CheckpointError(f"{path / name} is truncated or missing ({actual} bytes, expected {size}); "
                                  f"the checkpoint is corrupt: use an earlier step-NNNNNNNN folder")
    return path


def read_config(path) -> dict:
    return json.loads((resolve(path) / "config.json").read_text())


def load_weights(model, path, trainable_only: bool = False) -> None:
    """Load weights into ``model``; a model of another shape gets an error naming the tensors. With
    ``trainable_only`` (chapter 15) the checkpoint holds only the parameters that train, and the model's frozen
    ones (its base) stay as they are."""
    from safetensors import SafetensorError
    from safetensors.torch import load_model

    path = resolve(path)
    try:
        missing, unexpected = load_model(model, str(path / "model.safetensors"), strict=False)
    except SafetensorError as exc:
        raise CheckpointError(f"{path / 'model.safetensors'} cannot be read: {exc}") from None
    except RuntimeError as exc:  # size mismatch
        raise CheckpointError(f"the checkpoint at {path} does not fit this model: {exc}") from None
    if trainable_only:  # the frozen base is not in the file: only trainable tensors may be missing
        frozen = {n for n, p in model.named_parameters() if not p.requires_grad}
        missing = [n for n in missing if n not in frozen and n in dict(model.named_parameters())]
    if missing or unexpected:
        raise CheckpointError(f"the checkpoint at {path} does not fit this model: missing {sorted(missing)}, "
                              f"unexpected {sorted(unexpected)}")


def weights_dtype(path) -> torch.dtype:
    """The dtype the checkpoint's weights were written in (float32 unless a run chose another)."""
    from safetensors import safe_open

    with safe_open(str(resolve(path) / "model.safetensors"), framework="pt") as f:
        return f.get_tensor(next(iter(f.keys()))).dtype


def load_model(path):
    """(model, config) from a checkpoint: the GPT its config describes, with its weights, in eval mode."""
    from ..gpt import GPT, GPTConfig

    config = read_config(path)
    model = GPT(GPTConfig(**config["model"]))
    load_weights(model, path)
    return model.eval(), config


def load_state(path) -> dict:
    path = resolve(path)
    try:
        return torch.load(path / "state.pt", weights_only=False)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure means a corrupt file
        raise CheckpointError(f"{path / 'state.pt'} cannot be read ({type(exc).__name__}): the checkpoint is corrupt") from None
