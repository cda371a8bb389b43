"""The NumPy layers against numerical gradients and against torch autograd (a trusted reference)."""
import numpy as np
import pytest

from quanta_tissu.numpy_nn import functional as F
from quanta_tissu.numpy_nn import gradcheck, layers, models, optim, train

try:  # the trusted reference: tests that compare with it skip without it, the NumPy-only ones still run
    import torch
except ImportError:
    torch = None
needs_torch = pytest.mark.skipif(torch is None, reason="torch is not installed")


def test_softmax_is_stable_and_normalised():
    x = np.array([[1000.0, 1001.0, 1002.0], [-1000.0, 0.0, 1000.0]])
    p = F.softmax(x)
    assert np.all(np.isfinite(p)) and np.allclose(p.sum(axis=1), 1)
    assert np.allclose(np.exp(F.log_softmax(x)), p)


@needs_torch
def test_cross_entropy_matches_torch(rng):
    logits, targets = rng.standard_normal((7, 11)) * 4, rng.integers(0, 11, size=7)
    t = torch.tensor(logits, requires_grad=True)
    loss = torch.nn.functional.cross_entropy(t, torch.tensor(targets))
    loss.backward()
    assert np.isclose(F.cross_entropy(logits, targets), loss.item())
    assert np.allclose(F.cross_entropy_grad(logits, targets), t.grad.numpy())


def test_cross_entropy_rejects_bad_shapes():
    with pytest.raises(ValueError, match=r"targets must be \(3,\)"):
        F.cross_entropy(np.zeros((3, 4)), np.zeros(2, dtype=int))
    with pytest.raises(ValueError, match="0..3"):
        F.cross_entropy(np.zeros((2, 4)), np.array([0, 4]))


@pytest.mark.parametrize("make", [
    lambda r: (layers.Linear(5, 3, r), r.standard_normal((4, 5))),
    lambda r: (layers.Linear(5, 3, r, bias=False), r.standard_normal((4, 5))),
    lambda r: (layers.Tanh(), r.standard_normal((4, 5))),
    lambda r: (layers.Embedding(9, 3, r), r.integers(0, 9, size=(4, 6))),
])
def test_layers_pass_gradient_check(make, rng):
    layer, x = make(rng)
    result = gradcheck.check_layer(layer, x, rng)
    assert result.ok, result


def test_gradient_check_catches_a_wrong_backward(rng):
    class WrongTanh(layers.Tanh):
        def backward(self, dout):
            return dout * (1.0 - self.y)  # forgot the square

    assert not gradcheck.check_layer(WrongTanh(), rng.standard_normal((3, 4)), rng).ok


def test_numerical_gradient_refuses_float32():
    with pytest.raises(TypeError, match="float64"):
        gradcheck.numerical_gradient(lambda: 0.0, np.zeros(3, dtype=np.float32))


@needs_torch
def test_dropout_scales_and_is_identity_in_eval(rng):
    d = layers.Dropout(0.25, rng)
    x = np.ones((200, 200))
    y = d.forward(x)
    assert set(np.unique(y)) <= {0.0, 1 / 0.75} and abs(y.mean() - 1) < 0.02
    d.training = False
    assert d.forward(x) is x
    with pytest.raises(ValueError, match="dropout probability"):
        layers.Dropout(1.0, rng)


def _torch_mlp_grads(model, x, y):
    """The same MLP written with torch ops, on the same weights: loss and parameter grads."""
    ps = {name: torch.tensor(p, requires_grad=True) for name, p, _ in model.named_parameters()}
    e = ps["embedding.W"][torch.tensor(x)].reshape(len(x), -1)
    h = torch.tanh(e @ ps["hidden.W"] + ps["hidden.b"])
    loss = torch.nn.functional.cross_entropy(h @ ps["output.W"] + ps["output.b"], torch.tensor(y))
    loss.backward()
    return loss.item(), {k: v.grad.numpy() for k, v in ps.items()}


@needs_torch
def test_mlp_matches_torch_autograd(rng):
    model = models.MLPLanguageModel(13, 4, 5, 7, rng)
    x, y = rng.integers(0, 13, size=(9, 4)), rng.integers(0, 13, size=9)
    loss = model.loss_and_backward(x, y)
    ref_loss, ref_grads = _torch_mlp_grads(model, x, y)
    assert np.isclose(loss, ref_loss)
    for name, _, grad in model.named_parameters():
        assert np.allclose(grad, ref_grads[name]), name


def test_model_rejects_wrong_context(rng):
    model = models.MLPLanguageModel(13, 4, 5, 7, rng)
    with pytest.raises(ValueError, match=r"\(N, 4\)"):
        model.forward(np.zeros((2, 3), dtype=int))


@needs_torch
def test_adam_matches_torch(rng):
    p0 = rng.standard_normal((3, 4))
    ours = p0.copy()
    grad = np.zeros_like(ours)
    opt = optim.Adam([(ours, grad)], lr=0.05, betas=(0.8, 0.99), eps=1e-6)
    ref = torch.tensor(p0, requires_grad=True)
    ref_opt = torch.optim.Adam([ref], lr=0.05, betas=(0.8, 0.99), eps=1e-6)
    for _ in range(5):
        g = rng.standard_normal((3, 4))
        grad[...] = g
        opt.step()
        ref.grad = torch.tensor(g)
        ref_opt.step()
    assert np.allclose(ours, ref.detach().numpy(), atol=1e-12)


def test_full_batch_grad_equals_backward_over_all_pairs(rng):
    ids = rng.integers(0, 6, size=400)
    net = models.BigramNet(6)
    net.linear.params["W"][...] = rng.standard_normal((6, 6))
    x, y = train.all_examples(ids, 1)
    net.loss_and_backward(x, y)
    counts = np.zeros((6, 6))
    np.add.at(counts, (ids[:-1], ids[1:]), 1)
    assert np.allclose(net.linear.grads["W"], models.bigram_full_batch_grad(net.linear.params["W"], counts))


def test_batches_and_evaluation(rng):
    ids = np.arange(50)
    x, y = train.get_batch(ids, 3, 8, rng)
    assert x.shape == (8, 3) and np.array_equal(y, x[:, -1] + 1)
    xa, ya = train.all_examples(ids, 3)
    assert xa.shape == (47, 3) and ya[0] == 3
    with pytest.raises(ValueError, match="more than 3"):
        train.get_batch(np.arange(3), 3, 2, rng)


def test_fit_lowers_the_loss(rng):
    ids = np.tile(np.arange(5), 200)  # perfectly predictable
    model = models.MLPLanguageModel(5, 2, 4, 16, rng)
    history = train.fit(model, optim.Adam(model.parameters(), lr=1e-2), ids, ids, 200, 32, rng, eval_every=100)
    assert history.val[-1] < 0.05 < history.train[0]
