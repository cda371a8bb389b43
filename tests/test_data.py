import hashlib

import numpy as np
import pytest

import quanta_tissu as qt
from quanta_tissu.data import CORPORA, CorpusError


def test_missing_corpus_message_says_where_to_put_it(isolated_data):
    with pytest.raises(CorpusError) as err:
        qt.load_text("tinyshakespeare", download=False)
    msg = str(err.value)
    assert "tinyshakespeare.txt" in msg and "QUANTA_TISSU_DATA" in msg
    assert str(isolated_data / "cache" / "tinyshakespeare.txt") in msg


def test_corrupt_corpus_is_refused(isolated_data, monkeypatch):
    folder = isolated_data / "data"
    folder.mkdir()
    (folder / "tinyshakespeare.txt").write_text("not the real thing")
    monkeypatch.setenv("QUANTA_TISSU_DATA", str(folder))
    with pytest.raises(CorpusError, match="checksum"):
        qt.data.corpus_path("tinyshakespeare", download=False)


def test_data_folder_comes_before_cache(isolated_data, monkeypatch):
    payload = b"hello corpus\n"
    monkeypatch.setitem(CORPORA, "toy", qt.data.Corpus("toy.txt", "https://invalid.example/toy.txt",
                                                          hashlib.sha256(payload).hexdigest(), len(payload)))
    cache = isolated_data / "cache"
    cache.mkdir()
    (cache / "toy.txt").write_bytes(payload)
    assert qt.data.corpus_path("toy", download=False) == cache / "toy.txt"
    folder = isolated_data / "data"
    folder.mkdir()
    (folder / "toy.txt").write_bytes(payload)
    monkeypatch.setenv("QUANTA_TISSU_DATA", str(folder))
    assert qt.data.corpus_path("toy", download=False) == folder / "toy.txt"


def test_unknown_corpus():
    with pytest.raises(CorpusError, match="known corpora"):
        qt.load_text("nope")


def test_shakespeare_checksum_and_size(shakespeare_ids):
    assert len(shakespeare_ids) == 1_115_394
    assert shakespeare_ids.max() == 64


def test_train_val_split_is_contiguous():
    a, b = qt.data.train_val_split(np.arange(100), 0.1)
    assert list(a) == list(range(90)) and list(b) == list(range(90, 100))
    with pytest.raises(ValueError, match="val_fraction"):
        qt.data.train_val_split(np.arange(10), 1.5)
    with pytest.raises(ValueError, match="empty"):
        qt.data.train_val_split(np.arange(2), 0.9)
