"""Language models in NumPy: the bigram network (chapter 02) and the MLP of Bengio et al. (chapter 03).

Both map a context of ids (N, T) to next-id logits (N, V) and share one protocol:
``forward``, ``backward(dlogits)``, ``loss_and_backward``, ``parameters()`` (param, grad)
pairs for an optimizer, ``train()`` / ``eval()``, and ``generate``.
Does not: run on torch, or look at more than ``context`` previous ids.
"""
from __future__ import annotations

import numpy as np

from .functional import cross_entropy, cross_entropy_grad, one_hot, softmax
from .layers import Dropout, Embedding, Linear, Tanh


class Model:
    """What both models share: a list of layers, parameters, modes, loss and generation."""

    context: int  # how many previous ids the model reads
    vocab_size: int
    layers: list

    def named_parameters(self):
        """(name, param, grad) triples, each named after the attribute holding its layer: "hidden.W"."""
        attribute = {id(value): key for key, value in vars(self).items()}
        return [(f"{attribute[id(layer)]}.{name}", layer.params[name], layer.grads[name])
                for layer in self.layers for name in layer.params]

    def parameters(self):
        """(param, grad) pairs, the input of ``optim.SGD`` and ``optim.Adam``."""
        return [(p, g) for _, p, g in self.named_parameters()]

    def num_parameters(self) -> int:
        return sum(p.size for _, p, _ in self.named_parameters())

    def train(self, mode: bool = True):
        for layer in self.layers:
            layer.training = mode
        return self

    def eval(self):
        return self.train(False)

    def loss_and_backward(self, x: np.ndarray, y: np.ndarray) -> float:
        """Forward, mean cross-entropy against ``y`` (N,), then backward: grads are set."""
        logits = self.forward(x)
        loss = cross_entropy(logits, y)
        self.backward(cross_entropy_grad(logits, y))
        return loss

    def _check_context(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x)
        if x.ndim != 2 or x.shape[1] != self.context:
            raise ValueError(f"{type(self).__name__} expects ids of shape (N, {self.context}), got {x.shape}")
        return x

    def generate(self, prompt: np.ndarray, length: int, rng: np.random.Generator) -> np.ndarray:
        """Append ``length`` sampled ids to ``prompt`` (1-D, at least ``context`` ids long)."""
        ids = list(np.asarray(prompt).tolist())
        if len(ids) < self.context:
            raise ValueError(f"the prompt needs at least {self.context} ids, got {len(ids)}")
        was_training = self.layers[0].training
        self.eval()
        for _ in range(length):
            logits = self.forward(np.array([ids[-self.context:]]))  # (1, V)
            ids.append(int(rng.choice(self.vocab_size, p=softmax(logits[0]))))
        self.train(was_training)
        return np.array(ids)


class BigramNet(Model):
    """logits = one_hot(x) @ W: a one-layer network whose weight matrix is a log-count table."""

    context = 1

    def __init__(self, vocab_size: int):
        self.vocab_size = vocab_size
        self.linear = Linear(vocab_size, vocab_size, np.random.default_rng(0), bias=False)
        self.linear.params["W"][...] = 0.0  # uniform predictions at the start
        self.layers = [self.linear]

    def forward(self, x: np.ndarray) -> np.ndarray:  # (N, 1) ids -> (N, V) logits
        x = self._check_context(x)
        return self.linear.forward(one_hot(x[:, 0], self.vocab_size))

    def backward(self, dlogits: np.ndarray) -> None:
        self.linear.backward(dlogits)


class MLPLanguageModel(Model):
    """Bengio et al. (2003): embed T ids, concatenate, tanh hidden layer, logits over V."""

    def __init__(self, vocab_size: int, context: int, emb_dim: int, hidden: int,
                 rng: np.random.Generator, dropout: float = 0.0):
        self.vocab_size, self.context = vocab_size, context
        self.embedding = Embedding(vocab_size, emb_dim, rng)
        # std gain / sqrt(fan-in): He et al.'s scaling with tanh's gain 5/3 (torch's calculate_gain("tanh"))
        self.hidden = Linear(context * emb_dim, hidden, rng, gain=5 / 3)
        self.tanh = Tanh()
        self.dropout = Dropout(dropout, rng)
        self.output = Linear(hidden, vocab_size, rng, gain=0.1)  # small logits: near-uniform at init
        self.layers = [self.embedding, self.hidden, self.tanh, self.dropout, self.output]

    def forward(self, x: np.ndarray) -> np.ndarray:  # (N, T) ids -> (N, V) logits
        x = self._check_context(x)
        e = self.embedding.forward(x)  # (N, T, C)
        h = e.reshape(len(x), -1)  # (N, T, C) -> (N, T*C): concatenate the T embeddings
        h = self.dropout.forward(self.tanh.forward(self.hidden.forward(h)))  # (N, d_ff)
        return self.output.forward(h)  # (N, V)

    def backward(self, dlogits: np.ndarray) -> None:
        dh = self.output.backward(dlogits)  # (N, d_ff)
        dh = self.hidden.backward(self.tanh.backward(self.dropout.backward(dh)))  # (N, T*C)
        self.embedding.backward(dh.reshape(self.embedding.ids.shape + (-1,)))  # (N, T*C) -> (N, T, C)


def bigram_full_batch_grad(W: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Gradient of the mean cross-entropy over *all* training pairs, from their counts alone.

    (V, V) logits table, (V, V) pair counts -> (V, V):
        dL/dW[i, j] = (n_i softmax(W[i])_j - C[i, j]) / N,   n_i = sum_j C[i, j],  N = sum C.
    It vanishes exactly at softmax(W[i]) = C[i] / n_i: the counting solution.
    """
    n_rows = counts.sum(axis=1, keepdims=True)  # (V, 1) how often each row occurs
    return (n_rows * softmax(W) - counts) / counts.sum()
