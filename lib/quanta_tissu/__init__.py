"""QuantaTissu: the course library, imported as ``qt``.

Each chapter of the course adds one concept to this package, in a module named
after the concept (not the chapter); every module's docstring names the chapter
that introduces it.

What ``import quanta_tissu`` does: nothing heavy. Submodules load on first
attribute access (``qt.bigram``, ``qt.numpy_nn``...), so Part I never imports
torch and the optional ecosystems (transformers, tokenizers, tiktoken...) are
only imported inside the functions that need them.
"""
from __future__ import annotations

import importlib

__version__ = "0.1.0"

# Submodules reachable as attributes, e.g. ``qt.data.load_text``.
_SUBMODULES = {
    "attention", "bigram", "bpe", "data", "diagrams", "gpt", "grade", "inference", "interop", "llama", "numpy_nn", "plotting",
    "precision", "profiling", "lora", "dpo", "preferences", "model_card",
    "playground", "rope", "runtime", "sampling", "kv_cache", "show", "tokenizer", "training", "zoo", "quantize", "gptq", "watermark",
}
# Convenience names re-exported at the top level: name -> module (or "module:attribute").
_SHORTCUTS = {
    "load_text": "data",
    "setup": "runtime",
    "Defaults": "runtime",
    "seed_everything": "runtime",
    "show_source": "show",
    "table": "show",
    "below": "show",
    "CharTokenizer": "tokenizer",
    "BasicBPE": "bpe",
    "RegexBPE": "bpe",
    "pretrained": "zoo",
    "generate": "inference:complete",  # qt.generate: prompts in, completions out (chapter 10)
    "stream": "inference",
    "load_hf": "interop.hf_llama",
    "save_hf": "interop.hf_llama",
}

__all__ = sorted(_SUBMODULES | set(_SHORTCUTS))


def __getattr__(name: str):
    """Import submodules lazily so that ``import quanta_tissu`` stays fast."""
    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    if name in _SHORTCUTS:
        module, _, attribute = _SHORTCUTS[name].partition(":")
        return getattr(importlib.import_module(f"{__name__}.{module}"), attribute or name)
    raise AttributeError(f"module 'quanta_tissu' has no attribute {name!r}")


def __dir__():
    return __all__
