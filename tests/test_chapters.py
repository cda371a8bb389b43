"""Every chapter follows the course's template; nbval (make nbval) re-executes them."""
import json

import pytest
import yaml

from conftest import ROOT

CHAPTERS = sorted((ROOT / "chapters").glob("[0-9][0-9]_*.ipynb"))


def load(path):
    return json.loads(path.read_text(encoding="utf-8"))


def test_every_chapter_is_in_the_toc():
    toc = (ROOT / "_toc.yml").read_text()
    assert CHAPTERS and all(f"chapters/{p.stem}" in toc for p in CHAPTERS)
    yaml.safe_load(toc)


@pytest.mark.parametrize("path", CHAPTERS, ids=[p.stem for p in CHAPTERS])
def test_chapter_template(path):
    nb = load(path)
    cells = nb["cells"]
    code = [c for c in cells if c["cell_type"] == "code"]
    markdown = "".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown")
    assert "".join(cells[0]["source"]).startswith(f"# {path.stem[:2]} ·"), "title first"
    assert "You will learn" in markdown and "## What you built" in markdown
    assert "## Questions" in markdown and "## Exercises" in markdown
    assert any("parameters" in c["metadata"].get("tags", []) for c in code), "a papermill parameters cell"
    assert any("qt.setup(" in "".join(c["source"]) for c in code), "an environment cell"
    assert any("qt.show_source(" in "".join(c["source"]) for c in code), "shows lib source"
    assert "python -m quanta_tissu.grade" in markdown
    outputs = [o for c in code for o in c.get("outputs", [])]
    assert all(c.get("execution_count") for c in code), "stored executed, every cell"
    assert not [o for o in outputs if o["output_type"] == "error"]
    assert any("image/png" in o.get("data", {}) for o in outputs), "at least one plot"
    assert not [o for o in outputs if o.get("name") == "stderr"], "no warnings or stderr in stored outputs"


@pytest.mark.parametrize("path", CHAPTERS, ids=[p.stem for p in CHAPTERS])
def test_chapter_has_graded_exercises(path):
    from quanta_tissu.grade.core import CHAPTERS as GRADED

    number = path.stem[:2]
    assert number in GRADED
    exercise = ROOT / "exercises" / GRADED[number]
    assert exercise.is_file() and (ROOT / "solutions" / GRADED[number]).is_file()
    assert exercise.read_text().count("raise NotImplementedError") >= 3


def test_papermill_parameters_scale_a_chapter(tmp_path):
    """A learner can override the parameters cell: papermill injects them and the chapter runs."""
    import quanta_tissu as qt

    try:
        qt.data.corpus_path("tinyshakespeare", download=False)
    except qt.data.CorpusError as err:
        pytest.skip(f"corpus not available: {err}")
    papermill = pytest.importorskip("papermill")
    out = tmp_path / "01.ipynb"
    papermill.execute_notebook(str(ROOT / "chapters" / "01_counting.ipynb"), str(out),
                               parameters={"sample_length": 40}, cwd=str(ROOT / "chapters"), progress_bar=False)
    nb = load(out)
    injected = [c for c in nb["cells"] if "injected-parameters" in c["metadata"].get("tags", [])]
    assert injected and "sample_length = 40" in "".join(injected[0]["source"])


def _displayed_sources(nb):
    """(qualified name, code) for every ``qt.show_source`` output stored in a notebook."""
    import re

    title = re.compile(r"^\*\*qt\.(?P<name>[\w.]+) — lib/")
    for cell in nb["cells"]:
        for out in cell.get("outputs", []):
            md = "".join(out.get("data", {}).get("text/markdown", ""))
            match = title.match(md)
            if match:
                yield match.group("name"), md


@pytest.mark.parametrize("path", CHAPTERS, ids=[p.stem for p in CHAPTERS])
def test_displayed_lib_source_is_current(path):
    """A chapter shows lib code through qt.show_source; if the lib changed since the chapter was executed,
    the stored output is stale: re-execute the chapter (nbval would fail on it too, but only after minutes)."""
    import importlib

    import quanta_tissu as qt

    stale = []
    for name, code in _displayed_sources(load(path)):
        parts = name.split(".")
        for split in range(len(parts), 0, -1):  # the longest importable module prefix, then attributes
            try:
                obj = importlib.import_module("quanta_tissu." + ".".join(parts[:split]))
                break
            except ModuleNotFoundError:
                continue
        for part in parts[split:]:
            obj = getattr(obj, part)
        if qt.show_source(obj)._repr_markdown_() != code:  # the code and its file and line numbers
            stale.append(name)
    assert not stale, f"{path.name} shows outdated source of {stale}: re-execute the chapter"
