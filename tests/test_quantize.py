"""Chapter 14: quantization formats against their definitions and references (gguf's quantizers, QLoRA's NF4
table), QuantizedLinear and its checkpoints, and GPTQ against round-to-nearest."""
import copy

import numpy as np
import pytest
import torch

from quanta_tissu import quantize as Q
from quanta_tissu.gpt import GPT, GPTConfig
from quanta_tissu.gptq import fake_quantize, gptq

NF4_PUBLISHED = [-1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453, -0.28444138169288635,
                 -0.18477343022823334, -0.09105003625154495, 0.0, 0.07958029955625534, 0.16093020141124725,
                 0.24611230194568634, 0.33791524171829224, 0.44070982933044434, 0.5626170039176941,
                 0.7229568362236023, 1.0]


@pytest.mark.parametrize("axis", [None, 0])
@pytest.mark.parametrize("symmetric", [True, False])
def test_int8_round_trip_is_within_half_a_step(axis, symmetric):
    w = torch.randn(16, 40) * torch.linspace(0.1, 3, 16)[:, None] + (0 if symmetric else 0.5)
    q, scale, zero = Q.quantize_int8(w, axis=axis, symmetric=symmetric)
    assert q.dtype == torch.int8 and (scale.numel() == 1 if axis is None else scale.shape == (16, 1))
    err = (Q.dequantize_int8(q, scale, zero) - w).abs()
    assert (err <= scale / 2 + 1e-6).all()
    if not symmetric:  # zero is exact, and the range uses all 256 levels
        assert (Q.dequantize_int8(torch.tensor([0], dtype=torch.int8) * 0 + zero.to(torch.int8), scale, zero)
                .abs() < 1e-6).all()


def test_int4_packing_and_groups():
    values = torch.randint(0, 16, (5, 64), dtype=torch.uint8)
    packed = Q.pack_int4(values)
    assert packed.shape == (5, 32) and torch.equal(Q.unpack_int4(packed), values)
    assert Q.pack_int4(torch.tensor([1, 2], dtype=torch.uint8)).item() == 0x21  # element 0 low, element 1 high
    w = torch.randn(8, 128)
    packed, scales = Q.quantize_int4(w, 32)
    assert packed.dtype == torch.uint8 and packed.shape == (8, 64) and scales.shape == (8, 4)
    err = (Q.dequantize_int4(packed, scales) - w).abs()
    assert (err <= scales.repeat_interleave(32, dim=1) / 2 + 1e-6).all()
    with pytest.raises(ValueError, match="group_size .* must divide the input width"):
        Q.quantize_int4(w, 48)
    with pytest.raises(TypeError, match="floating-point"):
        Q.quantize_int8(torch.ones(3, dtype=torch.int64))


def test_nf4_table_from_its_definition_equals_the_published_one():
    assert (Q.nf4_table().double() - torch.tensor(NF4_PUBLISHED, dtype=torch.float64)).abs().max() < 1e-7
    w = torch.randn(4, 64)
    packed, scales = Q.quantize_nf4(w, 64)
    restored = Q.dequantize_nf4(packed, scales)
    levels = Q.nf4_table()
    normed = (w / scales[:, :, None].reshape(4, 1).expand(4, 64)).unsqueeze(-1)
    nearest = levels[(normed - levels).abs().argmin(-1)] * scales
    assert torch.allclose(restored, nearest)


@pytest.mark.parametrize("shape", [(4, 32), (3, 64), (7, 128), (2, 3, 96)])
def test_q8_0_and_q4_0_are_byte_identical_to_gguf(shape):
    gq = pytest.importorskip("gguf.quants")
    from gguf import GGMLQuantizationType as T

    x = torch.randn(*shape, generator=torch.Generator().manual_seed(sum(shape))) * 3
    x.view(-1)[:6] = torch.tensor([0.5, -0.5, 1.5, 0.0, 2.5, -2.5])  # halves: roundf sends them away from zero
    for ours, deq, qtype in ((Q.q8_0, Q.dequantize_q8_0, T.Q8_0), (Q.q4_0, Q.dequantize_q4_0, T.Q4_0)):
        reference = gq.quantize(x.numpy(), qtype)
        assert np.array_equal(ours(x).numpy(), reference), qtype
        assert np.array_equal(deq(torch.from_numpy(reference)).numpy(), gq.dequantize(reference, qtype)), qtype
    with pytest.raises(ValueError, match="multiple"):
        Q.q8_0(torch.randn(3, 40))


@pytest.mark.parametrize("dtype", [np.float32, np.float16, np.float64])
def test_q8_0_and_q4_0_take_numpy_arrays_and_return_them_as_gguf_does(dtype):
    gq = pytest.importorskip("gguf.quants")
    from gguf import GGMLQuantizationType as T

    a = (np.random.default_rng(0).standard_normal((3, 64)) * 2).astype(dtype)
    a_view = np.asfortranarray(a)  # not C-contiguous: still read right
    for ours, deq, qtype in ((Q.q8_0, Q.dequantize_q8_0, T.Q8_0), (Q.q4_0, Q.dequantize_q4_0, T.Q4_0)):
        blocks = ours(a)
        reference = gq.quantize(a.astype(np.float32), qtype)
        assert isinstance(blocks, np.ndarray) and blocks.dtype == np.uint8 and np.array_equal(blocks, reference)
        assert np.array_equal(ours(a_view), reference)
        numbers = deq(blocks)
        assert isinstance(numbers, np.ndarray) and numbers.dtype == np.float32
        assert np.array_equal(numbers, gq.dequantize(reference, qtype))
        assert isinstance(ours(torch.from_numpy(a)), torch.Tensor)  # a tensor in, a tensor out


@pytest.mark.parametrize("call,error,match", [
    (lambda: Q.q8_0(np.arange(32)), TypeError,
     r"q8_0 takes floating-point numbers \(a torch.Tensor or numpy.ndarray\), got a numpy.ndarray of int64"),
    (lambda: Q.q8_0(torch.arange(32)), TypeError,
     r"x must be a floating-point torch.Tensor, got a torch.Tensor of torch.int64, shape \(32,\)"),
    (lambda: Q.q8_0([0.5] * 32), TypeError, r"x must be a floating-point torch.Tensor, got a list"),
    (lambda: Q.quantize_int8(np.ones((2, 3), np.float32)), TypeError,
     r"weights must be a floating-point torch.Tensor, got a numpy.ndarray of float32, shape \(2, 3\); "
     r"convert it with torch.from_numpy"),
    (lambda: Q.quantize_int4(np.ones((2, 64), np.float32)), TypeError, "got a numpy.ndarray of float32"),
    (lambda: Q.quantize_nf4(torch.ones(2, 64, dtype=torch.int32)), TypeError, "got a torch.Tensor of torch.int32"),
    (lambda: Q.dequantize_q8_0(np.zeros(35, np.uint8)), ValueError, r"Q8_0 blocks are 34 bytes each.*shape \(35,\)"),
    (lambda: Q.dequantize_q4_0(np.zeros(36, np.float32)), TypeError,
     "dequantize_q4_0 takes uint8 bytes .*got a numpy.ndarray of float32"),
    (lambda: Q.dequantize_q4_0(torch.zeros(36)), TypeError, "Q4_0 blocks must be uint8 bytes.*torch.float32"),
    (lambda: Q.dequantize_q4_0([0] * 18), TypeError, "Q4_0 blocks must be uint8 bytes.*got a list"),
    (lambda: Q.q4_0(torch.tensor(1.0)), ValueError, "multiple"),
])
def test_quantizers_name_what_they_were_given(call, error, match):
    """A float32 array is not a float32 tensor: the message must say array vs tensor, not just the dtype."""
    with pytest.raises(error, match=match):
        call()



@pytest.mark.parametrize("in_features", [88, 96, 136, 256])
def test_int8_kernel_with_bfloat16_activations_is_right_at_any_width(in_features):
    """torch's int8 kernel with bfloat16 inputs is wrong unless in_features is a multiple of 16 (torch 2.13, CPU):
    QuantizedLinear falls back to float32 inputs there, and elsewhere stays within bfloat16's rounding."""
    torch.manual_seed(0)
    linear = torch.nn.Linear(in_features, 48, bias=False)
    q = Q.QuantizedLinear(linear, "int8")
    x = torch.randn(3, 5, in_features)
    exact = torch.nn.functional.linear(x, q.dequantized())
    try:
        Q.QuantizedLinear.kernel_dtype = torch.bfloat16
        y = q(x)
    finally:
        Q.QuantizedLinear.kernel_dtype = torch.float32
    assert y.dtype == torch.float32 and y.shape == exact.shape
    bound = 1e-5 if in_features % 16 else 2e-2  # float32 fallback, or bfloat16's 8 bits of mantissa
    assert (y - exact).abs().max() <= bound * exact.abs().max()
    assert torch.allclose(q(x), exact, rtol=1e-5, atol=1e-5)  # the default keeps float32 activations

@pytest.mark.parametrize("scheme", ["int8", "int4", "nf4"])
def test_quantized_model_runs_saves_and_loads(tmp_path, scheme):
    torch.manual_seed(0)
    model = GPT(GPTConfig.llama(vocab_size=40, block_size=16, n_layer=2, n_embd=96, n_head=4, n_kv_heads=2))
    idx = torch.randint(0, 40, (2, 16))
    reference = model(idx)[0]
    quantized = Q.quantize_model(copy.deepcopy(model), scheme, group_size=32)
    assert sum(isinstance(m, Q.QuantizedLinear) for m in quantized.modules()) == 2 * 5
    out = quantized(idx)[0]
    assert (out - reference).abs().max() < {"int8": 0.02, "int4": 0.2, "nf4": 0.2}[scheme]
    folder = Q.save_quantized(quantized, tmp_path / "q")
    fp32 = sum(p.numel() for n, p in model.named_parameters() if n.startswith("blocks") and p.dim() == 2) * 4
    assert (folder / "model.safetensors").stat().st_size < (model.num_parameters() * 4 - fp32 * (1 - 0.3))
    restored = Q.load_quantized(folder)
    assert torch.equal(restored(idx)[0], out)
    other = Q.quantize_model(GPT(GPTConfig.llama(vocab_size=40, block_size=16, n_layer=2, n_embd=96, n_head=4)),
                             scheme, 32)  # 4 key/value heads where the checkpoint has 2
    with pytest.raises(ValueError, match="does not fit this model"):
        Q.load_quantized(folder, other)
    other_scheme = {"int8": "int4", "int4": "nf4", "nf4": "int4"}[scheme]
    with pytest.raises(ValueError, match="is quantized as"):
        Q.load_quantized(folder, Q.quantize_model(copy.deepcopy(model), other_scheme, 32))
    with pytest.raises(ValueError, match="scheme must be one of"):
        Q.quantize_model(copy.deepcopy(model), "int3")


def test_gptq_beats_round_to_nearest_on_its_calibration_objective():
    torch.manual_seed(0)
    x = torch.randn(512, 64) @ torch.randn(64, 64) * 0.3  # correlated inputs, as activations are
    w = torch.randn(32, 64)
    H = 2 * x.T @ x / len(x)
    for bits in (4, 3):
        rtn, ours = fake_quantize(w, bits, 32), gptq(w, H, bits, 32)
        error = lambda q: ((x @ (q - w).T) ** 2).mean().item()  # noqa: E731
        assert error(ours) < 0.7 * error(rtn), bits
        assert all(len(torch.unique(g.round(decimals=5))) <= 2**bits for g in ours.reshape(32, 2, 32).unbind(1)[0])


@pytest.mark.parametrize("bits", [4, 3])
def test_gptq_recovers_half_of_round_to_nearest_loss_on_the_course_checkpoint(bits, shakespeare_text):
    import quanta_tissu as qt
    from quanta_tissu.gptq import quantize_model_gptq

    model, tok = qt.pretrained("shakespeare-llama")
    train, val = qt.data.train_val_split(shakespeare_text)
    windows = torch.tensor(np.array(tok.encode(val[:128 * 65]))).view(128, 65)
    starts = torch.randint(0, len(train) - 65, (128,), generator=torch.Generator().manual_seed(0)).tolist()
    calibration = torch.tensor(np.array([tok.encode(train[s:s + 64]) for s in starts]))

    def val_loss(m):
        with torch.no_grad():
            return m(windows[:, :-1], windows[:, 1:])[1].item()

    rtn = copy.deepcopy(model)
    with torch.no_grad():
        for m in rtn.blocks.modules():
            if isinstance(m, torch.nn.Linear):
                m.weight.copy_(fake_quantize(m.weight, bits))
    ours = copy.deepcopy(model)
    quantize_model_gptq(ours, calibration, bits)  # per channel, as the chapter's claim
    base = val_loss(model)
    rtn_cost, gptq_cost = val_loss(rtn) - base, val_loss(ours) - base
    assert rtn_cost > 0 and gptq_cost < 0.5 * rtn_cost, (bits, rtn_cost, gptq_cost)
