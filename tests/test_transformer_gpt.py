"""Chapter 05's NumPy block and chapter 06's GPT: gradient checks, and parity with torch autograd,
the NumPy forward, and transformers' GPT2LMHeadModel."""
import numpy as np
import pytest

from quanta_tissu.numpy_nn import gradcheck
from quanta_tissu.numpy_nn import transformer as tr

torch = pytest.importorskip("torch")
from quanta_tissu.gpt import GPT, GPTConfig  # noqa: E402
from quanta_tissu.interop import hf_gpt2, numpy_gpt  # noqa: E402


@pytest.mark.parametrize("make", [
    lambda r: (tr.Softmax(), r.standard_normal((2, 3, 5))),
    lambda r: (tr.LayerNorm(6), r.standard_normal((2, 3, 6)) * 3 + 1),
    lambda r: (tr.GELU(), r.standard_normal((2, 3, 6)) * 2),
    lambda r: (tr.CausalSelfAttention(8, 2, r), r.standard_normal((2, 4, 8))),
    lambda r: (tr.MLP(8, r), r.standard_normal((2, 4, 8))),
    lambda r: (tr.Block(8, 2, r), r.standard_normal((2, 4, 8))),
], ids=["softmax", "layernorm", "gelu", "attention", "mlp", "block"])
def test_numpy_pieces_pass_gradient_check(make, rng):
    layer, x = make(rng)
    for name, p in layer.params.items():  # non-trivial LayerNorm scales and shifts
        if name.endswith(("w", "b")) and p.ndim == 1:
            p[...] = rng.standard_normal(p.shape)
    result = gradcheck.check_layer(layer, x, rng)
    assert result.ok, result


def test_attention_is_causal(rng):
    attn = tr.CausalSelfAttention(8, 2, rng)
    x = rng.standard_normal((1, 5, 8))
    y = attn.forward(x)
    x2 = x.copy()
    x2[0, 3:] += 10.0  # change the future of position 2
    assert np.allclose(attn.forward(x2)[0, :3], y[0, :3])
    assert np.allclose(np.triu(attn.att[0, 0], k=1), 0) and np.allclose(attn.att.sum(-1), 1)


def test_numpy_block_matches_torch_autograd(rng):
    block = tr.Block(16, 4, rng)
    x = rng.standard_normal((2, 7, 16))
    y = block.forward(x)
    g = rng.standard_normal(y.shape)
    dx = block.backward(g)
    tblock = numpy_gpt.torch_block_from_numpy(block, block_size=8)
    xt = torch.tensor(x, requires_grad=True)
    yt = tblock(xt)
    (yt * torch.tensor(g)).sum().backward()
    assert np.allclose(yt.detach().numpy(), y, atol=1e-12)
    assert np.allclose(xt.grad.numpy(), dx, atol=1e-12)
    ours = numpy_gpt.numpy_grads_as_torch_names(block)
    for name, p in tblock.named_parameters():
        assert np.allclose(p.grad.numpy(), ours[name], atol=1e-12), name


def test_config_validation():
    with pytest.raises(ValueError, match="divisible by n_head"):
        GPTConfig(n_embd=130, n_head=4)
    with pytest.raises(ValueError, match="positive integer"):
        GPTConfig(n_layer=0)
    with pytest.raises(ValueError, match="dropout"):
        GPTConfig(dropout=1.0)
    assert GPTConfig.tiny().d_ff == 64


def test_gpt_shapes_loss_and_errors():
    torch.manual_seed(0)
    model = GPT(GPTConfig.tiny())
    idx = torch.randint(0, 32, (3, 16))
    logits, loss = model(idx, torch.randint(0, 32, (3, 16)))
    assert logits.shape == (3, 16, 32) and abs(loss.item() - np.log(32)) < 0.1
    assert model.lm_head.weight is model.wte.weight
    with pytest.raises(ValueError, match="longer than the context"):
        model(torch.zeros(1, 17, dtype=torch.long))
    with pytest.raises(ValueError, match="outside 0..31"):
        model(torch.full((1, 4), 32))
    with pytest.raises(ValueError, match=r"\(B, T\)"):
        model(torch.zeros(4, dtype=torch.long))
    with pytest.raises(TypeError, match="int64"):
        model(torch.zeros(1, 4))


def test_gpt_is_causal():
    torch.manual_seed(0)
    model = GPT(GPTConfig.tiny()).eval()
    a = torch.randint(0, 32, (1, 10))
    b = a.clone()
    b[0, 6:] = (b[0, 6:] + 1) % 32
    assert torch.allclose(model(a)[0][0, :6], model(b)[0][0, :6])


def test_parameter_count_of_the_nanogpt_recipe():
    assert GPT(GPTConfig.shakespeare_char()).num_parameters(non_embedding=True) == 801_664  # nanoGPT: 0.80M


@pytest.mark.parametrize("n_head,n_embd,n_layer,n_inner", [(3, 24, 2, None), (2, 10, 1, 7), (4, 32, 3, 48)])
def test_gpt2_parity_with_transformers(n_head, n_embd, n_layer, n_inner):
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    hf_cfg = transformers.GPT2Config(vocab_size=53, n_positions=20, n_embd=n_embd, n_layer=n_layer, n_head=n_head,
                                     n_inner=n_inner, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
                                     bos_token_id=None, eos_token_id=None)
    hf = transformers.GPT2LMHeadModel(hf_cfg).eval()
    ours = hf_gpt2.gpt_from_hf(hf).eval()
    idx = torch.randint(0, 53, (2, 20))
    with torch.no_grad():
        assert torch.allclose(ours(idx)[0], hf(idx).logits, atol=1e-5)
        back = hf_gpt2.hf_from_gpt(ours)
        assert torch.allclose(back(idx).logits, hf(idx).logits, atol=1e-5)


def test_hf_config_refusals():
    transformers = pytest.importorskip("transformers")
    with pytest.raises(ValueError, match="activation"):
        hf_gpt2.config_from_hf(transformers.GPT2Config(activation_function="relu"))
    with pytest.raises(ValueError, match="bias"):
        hf_gpt2.hf_from_gpt(GPT(GPTConfig.tiny(bias=False)))


def test_numpy_forward_of_the_whole_gpt():
    torch.manual_seed(0)
    model = GPT(GPTConfig.tiny(d_ff=40)).double().eval()
    idx = torch.randint(0, 32, (2, 16))
    assert np.allclose(numpy_gpt.numpy_forward(model, idx.numpy()), model(idx)[0].detach().numpy(), atol=1e-12)
