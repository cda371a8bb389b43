"""Training language models in PyTorch (chapter 07).

Modules:
- ``data``: a corpus tokenized once into ``train.bin`` / ``val.bin`` of token ids, read through
  ``numpy.memmap``; random contiguous batches from a seeded generator.
- ``optim``: AdamW written from scratch (checked step for step against ``torch.optim.AdamW``),
  the warmup + cosine learning-rate schedule (and warmup-stable-decay, chapter 08), and gradient-norm clipping.
- ``checkpoint``: model, optimizer, step, data position and RNG states, written atomically;
  resuming continues exactly where the run stopped.
- ``trainer``: ``TrainConfig`` (with presets) and the loop: gradient accumulation, clipping,
  evaluation, a progress bar with the live loss, and a JSON-lines metrics file.
- ``distributed`` (chapter 13): data parallelism on ``torch.distributed``: DDP, ZeRO stage 1 and FSDP2 as
  strategies of the one Trainer, the optimizer state in one format for any world size, ZeRO's accounting.
Imports the model; the model never imports this package.
"""
