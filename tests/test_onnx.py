"""ONNX export (chapter 17): onnxruntime computes our logits, with and without the cache, and decodes as we do."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnxscript")  # torch's dynamo exporter writes the graph with it
ort = pytest.importorskip("onnxruntime")
import quanta_tissu as qt  # noqa: E402
from quanta_tissu.gpt import GPT, GPTConfig  # noqa: E402
from quanta_tissu.inference import generate  # noqa: E402
from quanta_tissu.interop.onnx_export import OnnxDecoder, export_onnx  # noqa: E402

V = 50


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return GPT(GPTConfig.llama(vocab_size=V, block_size=32, n_layer=2, n_head=4, n_embd=32, d_ff=64,
                               n_kv_heads=2)).eval()


@pytest.fixture(scope="module")
def tiny_files(tiny, tmp_path_factory):
    folder = tmp_path_factory.mktemp("onnx")
    return export_onnx(tiny, folder / "tiny.onnx"), export_onnx(tiny, folder / "tiny-past.onnx", cache=True)


@pytest.fixture(scope="module", params=["shakespeare-llama", "shakespeare-bpe"])
def course(request, tmp_path_factory):
    """A course checkpoint, characters or chapter 18's BPE, and its cached graph."""
    model, tok = qt.pretrained(request.param, progress=False)
    return model, tok, export_onnx(model, tmp_path_factory.mktemp("course") / "past.onnx", cache=True)


def padded_batch(B, T, seed):
    """(B, T) random ids and a mask with row b left-padded by b positions."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, V, (B, T), generator=g)
    mask = (torch.arange(T)[None, :] >= torch.arange(B)[:, None]).long()  # (B, T): 0 on each row's left padding
    return ids, mask


def test_one_file_serves_any_batch_and_length(tiny, tiny_files):
    path = tiny_files[0]
    assert [p.name for p in path.parent.iterdir() if p.name.startswith("tiny.")] == ["tiny.onnx"]  # weights inside
    decoder = OnnxDecoder(path)
    for B, T in [(3, 7), (1, 12), (2, 32)]:
        ids, mask = padded_batch(B, T, seed=T)
        with torch.no_grad():
            ours = tiny(ids, attention_mask=mask)[0].numpy()  # (B, T, V)
        theirs = decoder.logits(ids.numpy(), mask.numpy())
        assert theirs.shape == (B, T, V)
        assert np.abs(theirs - ours).max() < 1e-5
    with pytest.raises(ValueError, match="outside"):  # the export switched the model's checks off only while tracing
        tiny(torch.tensor([[V]]))


def test_cached_steps_equal_a_full_forward(tiny, tiny_files):
    decoder = OnnxDecoder(tiny_files[1])
    cfg = tiny.cfg
    ids, mask = padded_batch(2, 11, seed=1)  # a prompt of 5, then 6 steps of one token
    with torch.no_grad():
        full = tiny(ids, attention_mask=mask)[0].numpy()  # (B, 11, V)
    keys = values = np.zeros((cfg.n_layer, 2, cfg.n_kv_heads, 0, cfg.n_embd // cfg.n_head), np.float32)  # P = 0
    start = 0
    for end in [5, 6, 7, 8, 9, 10, 11]:
        logits, keys, values = decoder.step(ids[:, start:end].numpy(), mask[:, :end].numpy(), keys, values)
        assert np.abs(logits - full[:, start:end]).max() < 1e-5
        assert keys.shape == values.shape == (cfg.n_layer, 2, cfg.n_kv_heads, end, cfg.n_embd // cfg.n_head)
        start = end


def test_onnx_greedy_is_ours_on_the_course_checkpoint(course):
    model, tok, path = course
    decoder = OnnxDecoder(path)
    prompts = ["ROMEO:\n", "First Citizen:\nWe are", "K"] + ["Roméo 🌹, wherefore"] * (tok.vocab_size > 256)
    out = decoder.greedy([tok.encode(p) for p in prompts], 40)  # (B, T + 40), prompts left-padded
    assert [tok.decode(row[-40:]) for row in out] == qt.generate(model, prompts, 40, tok, temperature=0)
    idx = torch.as_tensor(tok.encode("JULIET:"))[None]
    assert np.array_equal(decoder.greedy(idx.numpy(), 40), generate(model, idx, 40, temperature=0, cache=True).numpy())


def test_clear_errors(tiny, tiny_files, tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        export_onnx(tiny, tmp_path / "missing" / "model.onnx")
    with pytest.raises(TypeError, match="course GPT"):
        export_onnx(torch.nn.Linear(4, 4), tmp_path / "model.onnx")
    with pytest.raises(FileNotFoundError, match="export_onnx"):
        OnnxDecoder(tmp_path / "nothing.onnx")
    with pytest.raises(ValueError, match="cache=True"):  # greedy needs the graph with a past
        OnnxDecoder(tiny_files[0]).greedy([[1, 2]], 3)
    with pytest.raises(ValueError, match="context"):
        OnnxDecoder(tiny_files[1]).greedy([[1, 2]], 31)
    with pytest.raises(ValueError, match="outside"):
        OnnxDecoder(tiny_files[0]).logits([[1, V]])
