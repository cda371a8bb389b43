import os
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def shakespeare_text():
    """Tiny Shakespeare as text, or a skip saying how to provide it (the one place tests look for the corpus)."""
    import quanta_tissu as qt

    try:
        return qt.load_text("tinyshakespeare", download=False)
    except qt.data.CorpusError as err:
        pytest.skip(f"corpus not available: {err}")


@pytest.fixture(scope="session")
def shakespeare_ids(shakespeare_text):
    """Tiny Shakespeare as char ids."""
    import quanta_tissu as qt

    return qt.CharTokenizer.from_text(shakespeare_text).encode(shakespeare_text)


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.fixture
def isolated_data(tmp_path, monkeypatch):
    """No data folder, an empty cache: the loader sees nothing."""
    monkeypatch.delenv("QUANTA_TISSU_DATA", raising=False)
    monkeypatch.setenv("QUANTA_TISSU_CACHE", str(tmp_path / "cache"))
    return tmp_path


os.environ.setdefault("MPLBACKEND", "Agg")
