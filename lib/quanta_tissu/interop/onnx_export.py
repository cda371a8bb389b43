"""The course's GPT as an ONNX graph, run by onnxruntime (chapter 17: serving).

Does:
- ``export_onnx(model, path, cache=False)``: one self-contained ``.onnx`` file (weights embedded), traced by torch's
  dynamo exporter (``torch.export``) with the batch and sequence axes left dynamic, so one file serves any batch
  of any length up to the context. Without a cache the graph is ``GPT.forward``: ``input_ids`` (B, T) and
  ``attention_mask`` (B, T) (left padding, chapter 10) -> ``logits`` (B, T, V). With ``cache=True`` it is the usual
  decoder-with-past: the keys and values of the P positions already read come in as ``past_keys`` and
  ``past_values`` (L, B, KV, P, D), ``attention_mask`` covers all P + T positions, and ``present_keys`` and
  ``present_values`` (L, B, KV, P + T, D) come out, to be fed back as the next step's past. P may be 0: the prompt
  step is the same graph with an empty past.
- ``OnnxDecoder``: an onnxruntime session on such a file: ``logits`` for a batch, and ``greedy`` decoding with the
  cached graph, the prompt once and then one token per step, carrying present -> past; its ids are
  ``qt.inference.generate(model, idx, n, temperature=0, cache=True)``'s.
Why a wrapper and not the model itself: the graph cannot hold Python objects, so the cache graph's inputs and
outputs are tensors, and ``_ConcatCache`` (the interface of ``qt.kv_cache.KVCache`` that ``GPT.forward`` and
``Attention.forward`` use) hands them to the model, concatenating the new keys to the past ones instead of writing
into a pre-allocated buffer: a write in place has no place in a graph whose outputs are new tensors.
Does not: sample (only greedy), roll a sliding-window cache past the context, quantize, or export anything but a
course ``GPT``. torch.onnx, onnx and onnxruntime are imported only inside the functions that need them.
"""
from __future__ import annotations

import contextlib
import logging
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from ..gpt import GPT

INPUTS = ("input_ids", "attention_mask")
OUTPUTS = ("logits",)
CACHE_INPUTS = (*INPUTS, "past_keys", "past_values")
CACHE_OUTPUTS = (*OUTPUTS, "present_keys", "present_values")


class _ConcatCache:
    """The past keys and values (L, B, KV, P, D) of every layer, as ``GPT.forward`` reads a ``KVCache``: ``length``,
    ``layer(i)``, ``advance``. Each layer concatenates its new keys and values to the past ones and keeps the result."""

    def __init__(self, past_keys: torch.Tensor, past_values: torch.Tensor):
        self.past_keys, self.past_values = past_keys, past_values
        self.length = past_keys.size(3)  # P: a symbolic size while tracing, so P stays dynamic in the graph
        self.keys: list[torch.Tensor] = []  # per layer (B, KV, P + T, D), filled in layer order
        self.values: list[torch.Tensor] = []

    def layer(self, i: int) -> "_ConcatLayer":
        return _ConcatLayer(self, i)

    def advance(self, n: int) -> None:
        self.length += n

    def present(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(L, B, KV, P + T, D) keys and values: the past, then this step's."""
        return torch.stack(self.keys), torch.stack(self.values)


class _ConcatLayer:
    """Block i's view of a ``_ConcatCache``, with ``update`` as ``qt.kv_cache.LayerCache``'s."""

    def __init__(self, cache: _ConcatCache, index: int):
        self.cache, self.index = cache, index

    @property
    def length(self):
        return self.cache.length

    def update(self, k: torch.Tensor, v: torch.Tensor):
        """k, v (B, KV, T, D) of the new columns -> (k, v (B, KV, P + T, D), columns (P + T,)) of every key held."""
        c = self.cache
        k = torch.cat([c.past_keys[self.index], k], dim=2)  # (B, KV, P, D) + (B, KV, T, D): a new tensor
        v = torch.cat([c.past_values[self.index], v], dim=2)
        c.keys.append(k)
        c.values.append(v)
        return k, v, torch.arange(k.size(2), device=k.device)  # column s holds position s: the cache never rolls


class _Logits(nn.Module):
    """The graph without a cache: (input_ids, attention_mask) -> logits."""

    def __init__(self, model: GPT):
        super().__init__()
        self.model = model

    def forward(self, input_ids, attention_mask):  # (B, T), (B, T) -> (B, T, V)
        return self.model(input_ids, attention_mask=attention_mask)[0]


class _WithPast(nn.Module):
    """The graph with a cache: (input_ids, attention_mask, past_keys, past_values) -> (logits, present_keys,
    present_values)."""

    def __init__(self, model: GPT):
        super().__init__()
        self.model = model

    def forward(self, input_ids, attention_mask, past_keys, past_values):
        cache = _ConcatCache(past_keys, past_values)  # (L, B, KV, P, D) each
        logits = self.model(input_ids, attention_mask=attention_mask, cache=cache)[0]  # (B, T, V)
        return (logits, *cache.present())  # present: (L, B, KV, P + T, D) each


def cache_shape(cfg, batch_size: int, past: int) -> tuple[int, ...]:
    """(L, B, KV, P, D): the shape of ``past_keys`` and ``past_values``, as ``qt.kv_cache.KVCache``'s k and v."""
    return (cfg.n_layer, batch_size, cfg.n_kv_heads, past, cfg.n_embd // cfg.n_head)


def _example(model: GPT, cache: bool):
    """Example inputs to trace with, and the names of their dynamic axes. Sizes 0 and 1 are avoided (torch.export
    specialises on them), and so are equal sizes on different axes, so that no two axes look alike by accident."""
    cfg, device = model.cfg, model.wte.weight.device
    B, T, P = 2, 3, 4
    ids = torch.zeros(B, T, dtype=torch.long, device=device)
    axes = {"input_ids": {0: "batch", 1: "seq"}, "attention_mask": {0: "batch", 1: "seq"}}
    if not cache:
        return (ids, torch.ones_like(ids)), axes
    mask = torch.ones(B, P + T, dtype=torch.long, device=device)  # (B, P + T): the past's columns, then the new
    past = torch.zeros(cache_shape(cfg, B, P), dtype=model.wte.weight.dtype, device=device)
    axes["attention_mask"] = {0: "batch", 1: "past + seq"}
    axes["past_keys"] = axes["past_values"] = {1: "batch", 3: "past"}
    return (ids, mask, past, past.clone()), axes


def _trace(wrapper: nn.Module, args, names: dict):
    """torch.export's graph of ``wrapper`` with every named axis dynamic. Dim.DYNAMIC rather than named Dims lets
    export work out how the axes relate (the mask's length is the past's plus the new tokens', a sum that a Dim
    cannot spell). strict=True traces with dynamo, which passes over ``int(positions.max())`` in RoPE's forward
    (its value unused once ``_grow`` is switched off); strict=False stops there."""
    from torch.export import Dim

    shapes = {name: {axis: Dim.DYNAMIC for axis in axes} for name, axes in names.items()}
    return torch.export.export(wrapper, args, dynamic_shapes=shapes, strict=True)


@contextlib.contextmanager
def _traceable(model: GPT):
    """Switch off, for the length of the trace, the model's two steps that read tensor values in Python: its checks
    of the ids' values (``_check_ids``: ``ids.aminmax()`` against the vocabulary) and RoPE's ``_grow`` (``int(positions.max())``
    decides whether to extend the tables). A graph cannot branch on its inputs' values in Python, so torch.export
    refuses both. The ids are checked by ``OnnxDecoder`` instead, and the RoPE tables are exported as they are:
    ``block_size`` positions, all that a context holds."""
    ropes = [block.attn.rope for block in model.blocks if block.attn.rope is not None]
    model._check_ids = lambda *args, **kwargs: None  # instance attributes shadow the methods, then are deleted
    for rope in ropes:
        rope._grow = lambda length: None
    try:
        yield model
    finally:
        del model._check_ids
        for rope in ropes:
            del rope._grow


@contextlib.contextmanager
def _quiet():
    """Keep the exporter's notes to its own developers off stderr: deprecations inside torch, that two inputs share
    an axis name (they share the axis: we named it twice on purpose), torchvision's operators not registered."""
    log = logging.getLogger("torch.onnx")
    level = log.level
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.filterwarnings("ignore", message="# The axis name")
        log.setLevel(logging.ERROR)
        try:
            yield
        finally:
            log.setLevel(level)


def _check_export_args(model, path) -> Path:
    if not isinstance(model, GPT):
        raise TypeError(f"export_onnx exports a course GPT (qt.gpt.GPT), got {type(model).__name__}")
    path = Path(path)
    if not path.parent.is_dir():
        raise FileNotFoundError(f"cannot write {path}: the folder {path.parent} does not exist")
    return path


def export_onnx(model: GPT, path, cache: bool = False) -> Path:
    """Write ``model`` as one ``.onnx`` file at ``path`` (weights embedded) and return the path.

    cache=False: input_ids (B, T), attention_mask (B, T) int64 -> logits (B, T, V).
    cache=True: input_ids (B, T), attention_mask (B, P + T), past_keys, past_values (L, B, KV, P, D)
    -> logits (B, T, V), present_keys, present_values (L, B, KV, P + T, D); P may be 0."""
    path = _check_export_args(model, path)
    wrapper = (_WithPast if cache else _Logits)(model)
    args, axes = _example(model, cache)
    inputs, outputs = (CACHE_INPUTS, CACHE_OUTPUTS) if cache else (INPUTS, OUTPUTS)
    was_training = model.training
    wrapper.eval()  # dropout off: the graph is for inference
    try:
        with _traceable(model), _quiet(), torch.no_grad():
            program = torch.onnx.export(_trace(wrapper, args, axes), args, dynamic_shapes=axes,  # axes: their names
                                        input_names=list(inputs), output_names=list(outputs), verbose=False)
    finally:
        model.train(was_training)
    cfg = model.cfg  # read back by OnnxDecoder: how long a sequence the graph may see, and its vocabulary
    program.model.metadata_props.update(block_size=str(cfg.block_size), vocab_size=str(cfg.vocab_size))
    with _quiet():
        program.save(str(path), external_data=False)
    return path


class OnnxDecoder:
    """An onnxruntime session on a file from ``export_onnx``: logits for a batch, and greedy decoding."""

    def __init__(self, path, threads: int | None = None):
        import onnxruntime as ort

        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"no ONNX file at {path}: write one with export_onnx(model, path)")
        options = ort.SessionOptions()
        options.log_severity_level = 3  # errors only: onnxruntime's warnings are for its developers
        if threads is not None:
            options.intra_op_num_threads = threads
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        inputs = {i.name: i for i in self.session.get_inputs()}
        self.cached = "past_keys" in inputs  # exported with cache=True
        if self.cached:  # [L, 'batch', KV, 'past', D], in the model's dtype
            self.past_shape = inputs["past_keys"].shape
            self.past_dtype = {"tensor(float)": np.float32, "tensor(float16)": np.float16}[inputs["past_keys"].type]
        meta = self.session.get_modelmeta().custom_metadata_map
        self.block_size, self.vocab_size = int(meta["block_size"]), int(meta["vocab_size"])

    def _check(self, ids) -> np.ndarray:
        """The checks ``GPT.forward`` makes, which the graph leaves out (see ``_traceable``): (B, T) int64 ids."""
        ids = np.asarray(ids)
        if ids.ndim != 2 or not np.issubdtype(ids.dtype, np.integer):
            raise ValueError(f"input_ids must be integer ids of shape (B, T), got {ids.dtype} {ids.shape}")
        if ids.shape[1] > self.block_size:
            raise ValueError(f"{ids.shape[1]} positions do not fit the context ({self.block_size})")
        if ids.size and (ids.min() < 0 or ids.max() >= self.vocab_size):
            raise ValueError(f"input_ids hold ids outside 0..{self.vocab_size - 1}: does the tokenizer match?")
        return ids.astype(np.int64)

    def _empty_past(self, batch_size: int) -> np.ndarray:
        L, _, KV, _, D = self.past_shape
        return np.zeros((L, batch_size, KV, 0, D), dtype=self.past_dtype)  # P = 0: nothing read yet

    def step(self, input_ids, attention_mask, past_keys, past_values):
        """One call of the cached graph: -> (logits (B, T, V), present_keys, present_values (L, B, KV, P + T, D))."""
        feed = {"input_ids": input_ids, "attention_mask": attention_mask.astype(np.int64),
                "past_keys": past_keys, "past_values": past_values}
        return self.session.run(None, feed)

    def logits(self, input_ids, attention_mask=None) -> np.ndarray:
        """(B, T) ids and left-padding mask (default: no padding) -> (B, T, V) logits, with either graph."""
        ids = self._check(input_ids)
        mask = np.ones_like(ids) if attention_mask is None else np.asarray(attention_mask, dtype=np.int64)
        if mask.shape != ids.shape:
            raise ValueError(f"attention_mask must have the shape of input_ids {ids.shape}, got {mask.shape}")
        if not self.cached:
            return self.session.run(None, {"input_ids": ids, "attention_mask": mask})[0]
        past = self._empty_past(len(ids))
        return self.step(ids, mask, past, past)[0]

    def greedy(self, prompt_ids, max_new_tokens: int, attention_mask=None) -> np.ndarray:
        """Prompts (B, T) ids, or a list of id lists (left-padded here) -> (B, T + max_new_tokens) ids: the prompts
        and, after each, the most likely next token, max_new_tokens times; as ``qt.inference.generate`` at
        temperature 0, with the cache."""
        if not self.cached:
            raise ValueError("greedy decodes with the cached graph: export one with export_onnx(model, path, "
                             "cache=True)")
        if isinstance(prompt_ids, (list, tuple)) and attention_mask is None:
            from ..inference import left_pad

            idx, mask = left_pad([list(p) for p in prompt_ids])
            prompt_ids, attention_mask = idx.numpy(), mask.numpy()
        ids = self._check(prompt_ids)
        if ids.shape[1] + max_new_tokens > self.block_size:  # the graph's RoPE tables end at the context
            raise ValueError(f"a prompt of {ids.shape[1]} positions (padding included) and {max_new_tokens} new tokens "
                             f"do not fit the context of {self.block_size}; ask for at most "
                             f"{self.block_size - ids.shape[1]} tokens")
        mask = np.ones_like(ids) if attention_mask is None else np.asarray(attention_mask, dtype=np.int64)
        keys = values = self._empty_past(len(ids))
        step_in, out = ids, [ids]
        for _ in range(max_new_tokens):  # the whole prompt once, then one position per step
            logits, keys, values = self.step(step_in, mask, keys, values)  # present -> next step's past
            step_in = logits[:, -1].argmax(axis=-1)[:, None].astype(np.int64)  # (B, 1)
            mask = np.concatenate([mask, np.ones_like(step_in)], axis=1)  # (B, P + T + 1)
            out.append(step_in)
        return np.concatenate(out, axis=1)
