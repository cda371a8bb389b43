"""Chapter 08's pieces against transformers' Llama modules, and chapter 09's checkpoint exchange."""
import pytest

torch = pytest.importorskip("torch")
try:  # the reference: the tests that compare with it skip without it, the others still run
    import transformers
    from transformers.models.llama import modeling_llama as hf_llama
except ImportError:
    transformers = hf_llama = None
needs_transformers = pytest.mark.skipif(transformers is None, reason="transformers is not installed")

from quanta_tissu import llama  # noqa: E402
from quanta_tissu.attention import Attention  # noqa: E402
from quanta_tissu.gpt import GPT, GPTConfig  # noqa: E402
from quanta_tissu.interop import hf_llama as interop  # noqa: E402


def tiny_hf_config(**kw):
    base = dict(vocab_size=61, hidden_size=48, intermediate_size=88, num_hidden_layers=2, num_attention_heads=6,
                num_key_value_heads=2, max_position_embeddings=32, rms_norm_eps=1e-6, tie_word_embeddings=False,
                bos_token_id=None, eos_token_id=None, pad_token_id=None)
    base.update(kw)
    return transformers.LlamaConfig(**base)


@needs_transformers
def test_rmsnorm_matches_llama():
    torch.manual_seed(0)
    ours, theirs = llama.RMSNorm(16, 1e-6), hf_llama.LlamaRMSNorm(16, eps=1e-6)
    with torch.no_grad():
        ours.weight.normal_()
        theirs.weight.copy_(ours.weight)
    x = torch.randn(2, 5, 16) * 3
    assert torch.allclose(ours(x), theirs(x), atol=1e-6)


def test_rmsnorm_hand_written_backward_passes_gradcheck():
    torch.manual_seed(0)
    x = torch.randn(2, 3, 7, dtype=torch.float64, requires_grad=True)
    w = torch.randn(7, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x, w: llama.RMSNormFunction.apply(x, w, 1e-5), (x, w))


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_rmsnorm_hand_written_backward_matches_autograd(dtype):
    torch.manual_seed(0)
    x = (torch.randn(4, 9, 16) * 3).to(dtype).requires_grad_()
    w = torch.randn(16, requires_grad=True)
    grad = torch.randn(4, 9, 16)
    fast, slow = llama.RMSNormFunction.apply(x, w, 1e-5), llama.rms_norm_autograd(x, w, 1e-5)
    assert fast.dtype == slow.dtype and torch.allclose(fast, slow, atol=1e-6)
    fast_grads = torch.autograd.grad(fast, (x, w), grad.to(fast.dtype))
    slow_grads = torch.autograd.grad(slow, (x, w), grad.to(slow.dtype))
    tol = 1e-5 if dtype == torch.float32 else 2e-2  # bfloat16 rounds the input's gradient to 8 bits
    for f, s in zip(fast_grads, slow_grads):
        assert f.dtype == s.dtype and torch.allclose(f.float(), s.float(), atol=tol, rtol=tol)


@needs_transformers
def test_swiglu_matches_llama_mlp():
    torch.manual_seed(0)
    theirs = hf_llama.LlamaMLP(tiny_hf_config(hidden_size=18, intermediate_size=40))
    ours = llama.SwiGLU(18, 40)
    with torch.no_grad():
        ours.gate.weight.copy_(theirs.gate_proj.weight)
        ours.up.weight.copy_(theirs.up_proj.weight)
        ours.proj.weight.copy_(theirs.down_proj.weight)
    x = torch.randn(3, 7, 18)
    assert torch.allclose(ours(x), theirs(x), atol=1e-6)


@needs_transformers
def test_rope_matches_llama_rotary_embedding():
    cfg = tiny_hf_config(rope_parameters={"rope_type": "default", "rope_theta": 500.0})
    rotary = hf_llama.LlamaRotaryEmbedding(cfg)
    q, k = torch.randn(2, 6, 10, 8), torch.randn(2, 2, 10, 8)
    cos, sin = rotary(q, torch.arange(10)[None])
    hq, hk = hf_llama.apply_rotary_pos_emb(q, k, cos, sin)
    our_cos, our_sin = llama.rope_cache(8, 10, theta=500.0)
    assert torch.allclose(llama.apply_rope(q, our_cos, our_sin), hq, atol=1e-6)
    assert torch.allclose(llama.apply_rope(k, our_cos, our_sin), hk, atol=1e-6)


def test_interleaved_and_rotate_half_agree_after_permutation():
    torch.manual_seed(0)
    n_heads, head_dim, dim, T = 3, 8, 12, 9
    wq, wk = torch.randn(n_heads * head_dim, dim), torch.randn(n_heads * head_dim, dim)
    x = torch.randn(1, T, dim)
    heads = lambda w: (x @ w.T).view(1, T, n_heads, head_dim).transpose(1, 2)  # noqa: E731
    scores_interleaved = llama.apply_rope_interleaved(heads(wq)) @ llama.apply_rope_interleaved(heads(wk)).transpose(-1, -2)
    cos, sin = llama.rope_cache(head_dim, T)
    pq, pk = llama.interleaved_to_half(wq, n_heads), llama.interleaved_to_half(wk, n_heads)
    scores_half = llama.apply_rope(heads(pq), cos, sin) @ llama.apply_rope(heads(pk), cos, sin).transpose(-1, -2)
    assert torch.allclose(scores_interleaved, scores_half, atol=1e-5)
    assert not torch.allclose(scores_interleaved, llama.apply_rope(heads(wq), cos, sin) @ llama.apply_rope(heads(wk), cos, sin).transpose(-1, -2), atol=1e-3)


@needs_transformers
@pytest.mark.parametrize("kv", [6, 2, 1])  # MHA, GQA, MQA
def test_gqa_attention_matches_llama_attention(kv):
    torch.manual_seed(0)
    cfg = tiny_hf_config(num_key_value_heads=kv, rope_parameters={"rope_type": "default", "rope_theta": 500.0})
    cfg._attn_implementation = "eager"
    theirs = hf_llama.LlamaAttention(cfg, layer_idx=0).eval()
    ours = Attention(GPTConfig.llama(n_embd=48, n_head=6, n_kv_heads=kv, block_size=32,
                                     rope_theta=500.0)).eval()
    with torch.no_grad():
        ours.qkv.weight.copy_(torch.cat([theirs.q_proj.weight, theirs.k_proj.weight, theirs.v_proj.weight]))
        ours.proj.weight.copy_(theirs.o_proj.weight)
    T = 11
    x = torch.randn(2, T, 48)
    cos, sin = hf_llama.LlamaRotaryEmbedding(cfg)(x, torch.arange(T)[None])
    causal = torch.full((T, T), float("-inf")).triu(1)[None, None]  # (1, 1, T, T), added to the scores
    expected, _ = theirs(x, position_embeddings=(cos, sin), attention_mask=causal)
    assert torch.allclose(ours(x), expected, atol=1e-5)


@needs_transformers
@pytest.mark.parametrize("kv,tie,theta", [(2, False, 10000.0), (6, True, 500.0), (1, False, 1e6)])
def test_logits_match_llama_both_directions(tmp_path, kv, tie, theta):
    torch.manual_seed(0)
    hf_cfg = tiny_hf_config(num_key_value_heads=kv, tie_word_embeddings=tie,
                            rope_parameters={"rope_type": "default", "rope_theta": theta})
    theirs = transformers.LlamaForCausalLM(hf_cfg).eval()
    theirs.save_pretrained(tmp_path / "hf")
    ours = interop.load_hf(tmp_path / "hf")
    assert ours.cfg.n_kv_heads == kv and ours.cfg.tie_weights == tie and ours.cfg.rope_theta == theta
    idx = torch.randint(0, 61, (2, 32))
    with torch.no_grad():
        assert (ours(idx)[0] - theirs(idx).logits).abs().max() < 1e-4
        interop.save_hf(ours, tmp_path / "ours")
        back = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "ours").eval()
        assert (back(idx).logits - ours(idx)[0]).abs().max() < 1e-4
        prompt = idx[:1, :5]
        greedy = theirs.generate(prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=12, do_sample=False)
        seq = prompt
        for _ in range(12):
            seq = torch.cat([seq, ours(seq)[0][:, -1:].argmax(-1)], dim=1)
        assert torch.equal(seq, greedy)


@needs_transformers
def test_mismatched_checkpoints_name_the_tensors(tmp_path):
    torch.manual_seed(0)
    transformers.LlamaForCausalLM(tiny_hf_config()).save_pretrained(tmp_path / "hf")
    from safetensors.torch import load_file, save_file

    state = load_file(str(tmp_path / "hf" / "model.safetensors"))
    del state["model.layers.1.mlp.up_proj.weight"]
    state["model.extra.weight"] = torch.zeros(1)
    save_file(state, str(tmp_path / "hf" / "model.safetensors"))
    with pytest.raises(interop.CheckpointMismatch, match="model.layers.1.mlp.up_proj.weight.*model.extra.weight"):
        interop.load_hf(tmp_path / "hf")
    model = GPT(GPTConfig.llama(vocab_size=61, n_embd=48, n_head=6, n_kv_heads=2, n_layer=2, d_ff=88, block_size=32))
    bad = model.state_dict()
    bad["blocks.0.mlp.up.weight"] = torch.zeros(3, 3)
    with pytest.raises(interop.CheckpointMismatch, match=r"blocks.0.mlp.up.weight: checkpoint \(3, 3\)"):
        interop.load_state_checked(model, bad)
    with pytest.raises(FileNotFoundError, match="config.json"):
        interop.load_hf(tmp_path / "nowhere")


def test_config_switches_validate():
    with pytest.raises(ValueError, match="multiple of n_kv_heads"):
        GPTConfig(n_head=4, n_kv_heads=3)
    with pytest.raises(ValueError, match="norm must be one of"):
        GPTConfig(norm="batchnorm")
    with pytest.raises(ValueError, match="only the Llama configuration"):
        interop.config_to_hf(GPTConfig())
    assert GPTConfig(mlp="swiglu", n_embd=128).d_ff == 344
