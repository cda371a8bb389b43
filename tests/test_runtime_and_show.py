import subprocess
import sys

import numpy as np
import pytest

import quanta_tissu as qt


def test_import_is_light_and_torch_free():
    code = "import sys, quanta_tissu as qt; qt.bigram; qt.numpy_nn; qt.data; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_seed_everything_is_reproducible():
    a = qt.seed_everything(3).random(4)
    b = qt.seed_everything(3).random(4)
    assert np.array_equal(a, b)
    with pytest.raises(ValueError, match="non-negative"):
        qt.seed_everything(-1)


def test_setup_reports_and_device_choice(capsys):
    info = qt.setup(seed=1, threads=2, device="cpu")
    assert info.device == "cpu" and info.threads == 2
    assert "numpy" in capsys.readouterr().out
    with pytest.raises(ValueError, match="'cpu', 'cuda' or 'auto'"):
        qt.runtime.pick_device("tpu")
    assert qt.runtime.pick_device("auto") in {"cpu", "cuda"}


def test_show_source_shows_lib_code_only():
    src = qt.show_source(qt.bigram.count_bigrams)
    assert "def count_bigrams" in src._repr_markdown_() and "lib/quanta_tissu/bigram.py" in src.title
    import json

    with pytest.raises(TypeError, match="not part of quanta_tissu"):
        qt.show_source(json.dumps)
    with pytest.raises(TypeError):
        qt.show_source(np.mean)
    with pytest.raises(TypeError, match="cannot show the source"):
        qt.show_source(len)  # a builtin has no Python source


def test_show_source_unwraps_decorators():
    pytest.importorskip("torch")
    from quanta_tissu.training import optim

    assert "def step" in qt.show_source(optim.AdamW.step).code


def test_table_renders_markdown():
    md = qt.table(["a", "b"], [["x", 1.23456]])._repr_markdown_()
    assert "| x | 1.235 |" in md


def test_unknown_attribute():
    with pytest.raises(AttributeError):
        qt.no_such_thing  # noqa: B018
