"""Neural networks in NumPy with hand-written backward passes (Part I, and chapter 05).

Modules:
- ``functional``: softmax, log-softmax, cross-entropy and its gradient, one-hot (chapter 02).
- ``gradcheck``: the numerical gradient checker every backward pass is verified with (chapter 02).
- ``layers``: Linear, Embedding, Tanh, Dropout with forward and backward (chapters 02–03).
- ``optim``: SGD and Adam (chapters 02–03).
- ``models``: the bigram network (02) and the Bengio-style MLP language model (03).
- ``train``: batches of (context, next id) and the training loop with a progress bar.
- ``transformer``: softmax, LayerNorm, GELU, causal multi-head attention, MLP and a block (chapter 05).

Knows nothing of torch: Part I runs with NumPy alone.
"""
from . import functional, gradcheck, layers, models, optim, train, transformer  # noqa: F401  (all NumPy, light)
