"""The one attention (qt.attention): MHA, GQA and MQA are one module; left padding changes nothing."""
import pytest

torch = pytest.importorskip("torch")
from quanta_tissu.attention import Attention, repeat_kv  # noqa: E402
from quanta_tissu.gpt import GPT, GPTConfig  # noqa: E402

CONFIGS = {
    "gpt2": GPTConfig.tiny(vocab_size=40, n_embd=32, n_head=4),
    "llama-gqa": GPTConfig.llama(vocab_size=40, block_size=16, n_layer=2, n_embd=32, n_head=4, n_kv_heads=2),
    "llama-mqa": GPTConfig.llama(vocab_size=40, block_size=16, n_layer=2, n_embd=32, n_head=4, n_kv_heads=1),
}


def test_repeat_kv_maps_query_head_h_to_kv_head_h_over_group():
    x = torch.arange(2 * 3 * 1 * 1.0).view(2, 3, 1, 1)  # (B, KV=3, S, D)
    assert repeat_kv(x, 2)[0, :, 0, 0].tolist() == [0, 0, 1, 1, 2, 2]
    assert repeat_kv(x, 1) is x


def test_mqa_equals_mha_whose_heads_share_one_key_and_value():
    torch.manual_seed(0)
    mqa = Attention(GPTConfig.tiny(n_embd=32, n_head=4, n_kv_heads=1)).eval()
    mha = Attention(GPTConfig.tiny(n_embd=32, n_head=4)).eval()
    w_q, w_k, w_v = mqa.qkv.weight.split([32, 8, 8])  # (H*D, C), (D, C), (D, C)
    b_q, b_k, b_v = mqa.qkv.bias.split([32, 8, 8])
    with torch.no_grad():
        mha.qkv.weight.copy_(torch.cat([w_q, w_k.repeat(4, 1), w_v.repeat(4, 1)]))
        mha.qkv.bias.copy_(torch.cat([b_q, b_k.repeat(4), b_v.repeat(4)]))
        mha.proj.load_state_dict(mqa.proj.state_dict())
        x = torch.randn(2, 10, 32)
        assert (mqa(x) - mha(x)).abs().max() < 1e-6


def test_attention_is_causal():
    torch.manual_seed(0)
    attn = Attention(CONFIGS["llama-gqa"]).eval()
    x = torch.randn(1, 9, 32)
    later = x.clone()
    later[:, 5:] += 1.0
    with torch.no_grad():
        assert torch.allclose(attn(x)[:, :5], attn(later)[:, :5])


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_left_padded_batch_equals_each_sequence_alone(name):
    torch.manual_seed(0)
    model = GPT(CONFIGS[name]).eval()
    lengths = [7, 3, 12, 1]
    T = max(lengths)
    seqs = [torch.randint(1, 40, (n,)) for n in lengths]
    idx = torch.zeros(len(seqs), T, dtype=torch.long)  # 0 is the padding id here; any id works
    mask = torch.zeros(len(seqs), T, dtype=torch.long)
    for row, s in enumerate(seqs):
        idx[row, T - len(s):], mask[row, T - len(s):] = s, 1
    with torch.no_grad():
        batched = model(idx, attention_mask=mask)[0]
        for row, s in enumerate(seqs):
            alone = model(s[None])[0][0]  # (len, V)
            assert (batched[row, T - len(s):] - alone).abs().max() < 1e-5, (name, row)
        assert torch.isfinite(batched).all()  # padding rows stay finite: no empty softmax


def test_attention_mask_must_match_the_ids():
    model = GPT(CONFIGS["gpt2"])
    with pytest.raises(ValueError, match="attention_mask must have the shape of idx"):
        model(torch.zeros(2, 5, dtype=torch.long), attention_mask=torch.ones(2, 4))


def test_attention_maps_are_the_weights_attend_uses():
    from quanta_tissu.attention import attention_maps

    torch.manual_seed(0)
    model = GPT(CONFIGS["llama-gqa"]).eval()
    idx = torch.randint(0, 40, (1, 12))
    maps = attention_maps(model, idx)  # (L, H, T, T)
    assert maps.shape == (2, 4, 12, 12) and (maps.triu(1) == 0).all()
    with torch.no_grad():
        x = model.blocks[0].ln1(model.wte(idx))
        q, k, v = model.blocks[0].attn.project(x)
        assert (maps[0] @ repeat_kv(v, 2)[0] - model.blocks[0].attn.attend(q, k, v)[0]).abs().max() < 1e-6


def test_head_scores_average_the_weight_on_each_patterns_key():
    from quanta_tissu.attention import head_scores

    text = "ab c\nde"  # a space at 2 and a newline at 4: keys for the queries two or more characters later
    maps = torch.rand(2, 3, 7, 7)
    scores = head_scores(maps, text)
    assert torch.allclose(scores["previous character"], maps[:, :, range(1, 7), range(0, 6)].mean(-1))
    assert torch.allclose(scores["latest space or newline"], maps[:, :, [4, 5, 6], [2, 2, 4]].mean(-1))
    assert torch.allclose(scores["latest newline"], maps[:, :, 6, 4])
    with pytest.raises(ValueError, match="7 positions"):
        head_scores(maps, text[:-1])
