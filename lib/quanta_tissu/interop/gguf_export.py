"""The course's Llama as a GGUF file (chapter 14): the single-file container llama.cpp loads.

Does:
- ``save_gguf(model, path, quant="q8_0")`` writes the architecture ("llama") and its hyperparameters as GGUF
  metadata, and every weight under llama.cpp's tensor names (taken from the ``gguf`` package's own name map, via
  the Hugging Face names of chapter 09's ``state_to_hf``): the projection matrices as ``Q8_0`` or ``Q4_0`` blocks
  from ``qt.quantize.q8_0`` / ``q4_0`` (byte-identical to gguf's reference quantizers, tested), norms and the
  embedding as float32. llama.cpp's Llama rotates interleaved pairs (2i, 2i + 1), the course rotates halves
  (i, i + D/2), so the rows of the q and k projections are permuted within each head (``qt.rope.half_to_interleaved``,
  the inverse of chapter 08's ``interleaved_to_half``), as llama.cpp's own converter does.
- ``load_gguf(path)`` reads such a file back into a ``GPT``: the config from the metadata, the blocks dequantized,
  q and k permuted back; an architecture, a tensor type or a tensor name it does not know is a clear error.
- ``save_gguf(..., tokenizer=tok)`` (chapter 18) also writes llama.cpp's ``tokenizer.ggml.*`` metadata from
  ``qt.vocabulary`` (byte-level "gpt2" tokens, merges, special tokens as control, the split by name), for chapter
  04's BPE and for the character tokenizer alike; llama.cpp refuses a file without them.
  ``load_gguf(path, with_tokenizer=True)`` reads the tokenizer back.
Does not: run llama.cpp (it is not a Python package; ``benchmarks/`` records what it did with these files), or
read tensor types other than F32, Q8_0 and Q4_0. ``gguf`` is an optional dependency, imported by these
functions only.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..gpt import GPT
from ..quantize import dequantize_q4_0, dequantize_q8_0, q4_0, q8_0
from ..rope import half_to_interleaved, interleaved_to_half
from ..vocabulary import Vocabulary, tokenizer_from_gguf
from .hf_llama import config_from_hf, config_to_hf, load_state_checked, state_from_hf, state_to_hf

QUANTS = ("q8_0", "q4_0", "f32")  # how the projection matrices are stored
_KEYS = {  # GGUF metadata key (after "llama.") -> config.json field of chapter 09
    "context_length": "max_position_embeddings", "embedding_length": "hidden_size",
    "block_count": "num_hidden_layers", "feed_forward_length": "intermediate_size",
    "attention.head_count": "num_attention_heads", "attention.head_count_kv": "num_key_value_heads",
    "rope.freq_base": "rope_theta", "attention.layer_norm_rms_epsilon": "rms_norm_eps", "vocab_size": "vocab_size",
}


def _rotated_heads(hf_name: str, cfg) -> int | None:
    """The heads of a q or k projection (whose rows RoPE's convention orders), None for any other tensor."""
    if hf_name.endswith("q_proj.weight"):
        return cfg.n_head
    return cfg.n_kv_heads if hf_name.endswith("k_proj.weight") else None


def _gguf():
    try:
        import gguf
    except ImportError:
        raise ImportError("writing GGUF files needs the gguf package: pip install gguf") from None
    return gguf


def _name_map(n_layer: int):
    """A function: Hugging Face tensor name -> GGUF tensor name, for a Llama of n_layer blocks (gguf's own table)."""
    gguf = _gguf()
    table = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, n_layer)
    return lambda hf_name: table.get_name(hf_name, try_suffixes=(".weight",))


def save_gguf(model: GPT, path, quant: str = "q8_0", tokenizer=None) -> Path:
    """Write ``model`` (the Llama configuration) to ``path`` as GGUF, projections stored as ``quant``.

    ``tokenizer`` (a ``CharTokenizer`` or chapter 04's BPE, the one the model was trained with) is written as
    llama.cpp's tokenizer metadata; without it the file holds the weights only, which llama.cpp refuses."""
    if quant not in QUANTS:
        raise ValueError(f"quant must be one of {QUANTS}, got {quant!r}")
    gguf, cfg = _gguf(), model.cfg
    hf = config_to_hf(cfg)  # refuses a model that is not a Llama
    vocab = None if tokenizer is None else Vocabulary.of(tokenizer).check_fits(cfg.vocab_size).gguf_tokenizer()
    if quant != "f32" and (cfg.n_embd % 32 or cfg.d_ff % 32):
        raise ValueError(f"{quant} stores blocks of 32 weights along each row: n_embd ({cfg.n_embd}) and d_ff "
                         f"({cfg.d_ff}) must be multiples of 32; use quant='f32'")
    name, path = _name_map(cfg.n_layer), Path(path)
    writer = gguf.GGUFWriter(str(path), "llama")
    for key, field in _KEYS.items():
        value = hf[field]
        getattr(writer, "add_float32" if isinstance(value, float) else "add_uint32")(f"llama.{key}", value)
    writer.add_rope_dimension_count(cfg.n_embd // cfg.n_head)
    for key, value in (vocab or {}).items():
        _add_field(writer, key, value)
    writer.add_file_type({"q8_0": gguf.LlamaFileType.MOSTLY_Q8_0, "q4_0": gguf.LlamaFileType.MOSTLY_Q4_0,
                          "f32": gguf.LlamaFileType.ALL_F32}[quant])
    for hf_name, tensor in state_to_hf(model).items():
        tensor, heads = tensor.detach().float().cpu(), _rotated_heads(hf_name, cfg)
        if heads:  # rotate-half rows -> interleaved rows
            tensor = half_to_interleaved(tensor, heads)
        if tensor.dim() == 2 and hf_name.startswith("model.layers.") and quant != "f32":
            blocks = (q8_0 if quant == "q8_0" else q4_0)(tensor)  # (out, in / 32 * bytes per block), uint8
            writer.add_tensor(name(hf_name), blocks.numpy(), raw_dtype=getattr(gguf.GGMLQuantizationType,
                                                                               quant.upper()))
        else:
            writer.add_tensor(name(hf_name), tensor.numpy())
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def _add_field(writer, key: str, value) -> None:
    """One metadata field, typed as llama.cpp reads it: bool, uint32, string, or an array of strings or int32."""
    if isinstance(value, bool):
        writer.add_bool(key, value)
    elif isinstance(value, int):
        writer.add_uint32(key, value)
    elif isinstance(value, str):
        writer.add_string(key, value)
    else:
        writer.add_array(key, value)


def _metadata(reader) -> dict:
    return {field.name: field.contents() for field in reader.fields.values()}


def load_gguf(path, with_tokenizer: bool = False):
    """A ``GPT`` from a GGUF file written by ``save_gguf`` (or any float32/Q8_0/Q4_0 Llama without biases).

    ``with_tokenizer=True`` returns ``(model, tokenizer)``, the tokenizer read from the file's metadata."""
    gguf, path = _gguf(), Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no GGUF file at {path}")
    try:
        reader = gguf.GGUFReader(str(path))
    except Exception as err:  # a truncated or foreign file: say which, not the reader's internals
        raise ValueError(f"{path} is not a readable GGUF file ({type(err).__name__}: {err})") from None
    meta = _metadata(reader)
    if meta.get("general.architecture") != "llama":
        raise ValueError(f"{path} holds a {meta.get('general.architecture')!r} model; only 'llama' maps to the course's")
    missing = [f"llama.{k}" for k in _KEYS if f"llama.{k}" not in meta]
    if missing:
        raise ValueError(f"{path} lacks the metadata {missing}")
    hf = {field: meta[f"llama.{key}"] for key, field in _KEYS.items()}
    for field in ("rope_theta", "rms_norm_eps"):  # stored as float32: back to the decimal that was written
        hf[field] = float(f"{hf[field]:.7g}")
    tensors = {t.name: t for t in reader.tensors}
    hf["tie_word_embeddings"] = "output.weight" not in tensors
    cfg = config_from_hf(hf)
    name, model = _name_map(cfg.n_layer), GPT(cfg)
    theirs = {}
    for hf_name in state_to_hf(model):  # every Hugging Face name the config needs
        t = tensors.get(name(hf_name))
        if t is not None:
            theirs[hf_name] = _read_tensor(t, gguf, cfg, hf_name)
    load_state_checked(model, state_from_hf(theirs, cfg))  # a missing or mis-shaped tensor is named
    return (model.eval(), tokenizer_from_gguf(meta)) if with_tokenizer else model.eval()


def _read_tensor(t, gguf, cfg, hf_name: str) -> torch.Tensor:
    """One GGUF tensor as float32 (out, in), q and k rows back to rotate-half order."""
    kind = gguf.GGMLQuantizationType
    data = torch.from_numpy(np.array(t.data))
    if t.tensor_type == kind.Q8_0:
        data = dequantize_q8_0(data)
    elif t.tensor_type == kind.Q4_0:
        data = dequantize_q4_0(data)
    elif t.tensor_type != kind.F32:
        raise ValueError(f"tensor {t.name} is stored as {t.tensor_type.name}; this reader knows F32, Q8_0 and Q4_0")
    data = data.float().reshape([int(n) for n in reversed(t.shape)])  # GGUF lists the fastest axis first
    heads = _rotated_heads(hf_name, cfg)
    return interleaved_to_half(data, heads) if heads else data
