import json
import os
import time
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
_SESSION_START = time.time()


def quick_runs_path() -> Path:
    """Where ``test_quick_runs.py`` records each chapter's quick-run time."""
    return Path(os.environ.get("QUANTA_TISSU_QUICK_RUNS") or ROOT / "_build" / "quick_runs.json")


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


def pytest_terminal_summary(terminalreporter):
    """Print the quick-run times that ``test_quick_runs.py`` recorded in this session (figures, not checks)."""
    path = quick_runs_path()
    if not path.exists() or path.stat().st_mtime < _SESSION_START:
        return
    rows = json.loads(path.read_text(encoding="utf-8"))["chapters"]
    terminalreporter.section("quick-run times (recorded, never asserted)")
    for name, row in rows.items():
        terminalreporter.write_line(f"{name:<20} {row['seconds']:7.1f} s   {row['parameters']}")
    terminalreporter.write_line(f"total {sum(r['seconds'] for r in rows.values()):.0f} s; written to {path}")


os.environ.setdefault("MPLBACKEND", "Agg")
