"""Every chapter follows the course's template; nbval (make nbval) re-executes them."""
import json
import re

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
    live = [c for c in code if "skip-execution" not in c["metadata"].get("tags", [])]  # e.g. a widget for Lab only
    assert all(c.get("execution_count") for c in live), "stored executed, every cell"
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


# -- stored outputs that reproduce on any machine -------------------------------------------------------
# A measured difference printed in scientific notation (2.1e-07) or a figure with five or more decimals
# (1.58241) has digits that another CPU's kernels or thread count change. Print a bound ("< 1e-6") or a
# stable rounding, assert the real tolerance in the cell, or tag the cell nbval-ignore-output.
_VOLATILE = re.compile(r"(?<![\w.=])(?<![<≤]\s)(?<![<≤])(\d\.\d+e-\d+|\d+\.\d{5,})(?![\w.])")


def _checked_text_outputs(nb):
    """(cell index, text) of every output nbval compares, leaving out displayed lib source."""
    for i, cell in enumerate(nb["cells"]):
        tags = cell["metadata"].get("tags", [])
        if cell["cell_type"] != "code" or {"nbval-ignore-output", "nbval-skip"} & set(tags):
            continue
        for out in cell.get("outputs", []):
            data = out.get("data", {})
            text = "".join(out.get("text", "")) + "".join(data.get("text/markdown", ""))
            if "text/markdown" not in data and "image/png" not in data:
                text += "".join(data.get("text/plain", ""))
            if not text.startswith("**qt."):  # qt.show_source: code, not measurements
                yield i, text


def volatile_figures(nb):
    return [(i, m.group(0), text[max(0, m.start() - 40):m.end()].replace("\n", " "))
            for i, text in _checked_text_outputs(nb) for m in _VOLATILE.finditer(text)]


def test_volatile_figure_scan_catches_what_it_should():
    cell = {"cell_type": "code", "metadata": {}, "outputs": [{"output_type": "stream", "name": "stdout", "text": ""}]}
    def found(text):
        cell["outputs"][0]["text"] = text
        return [f for _, f, _ in volatile_figures({"cells": [cell]})]
    assert found("max logit difference 2.1e-07") == ["2.1e-07"]
    assert found("loss ours 1.58241, theirs 1.58241") == ["1.58241", "1.58241"]
    assert found("difference < 1e-6, loss 1.5824, norm_eps=1e-05, lr 3e-3, error ≤ 2.5e-07") == []


@pytest.mark.parametrize("path", CHAPTERS, ids=[p.stem for p in CHAPTERS])
def test_stored_outputs_hold_no_machine_dependent_figures(path):
    found = volatile_figures(load(path))
    assert not found, (f"{path.name}: figures whose digits depend on the CPU and thread count, in outputs nbval "
                       f"compares (cell, figure, context): {found}. Print a bound or a stable rounding and assert "
                       f"the tolerance, or tag the cell nbval-ignore-output.")


def _literals(source: str, call: str | None = None) -> dict:
    """Assignments of a parameters cell, or the keyword arguments of ``call(...)``, as Python values."""
    import ast

    tree = ast.parse(source)
    if call:
        node = next(n for n in ast.walk(tree) if isinstance(n, ast.Call) and ast.unparse(n.func) == call)
        return {kw.arg: ast.literal_eval(kw.value) for kw in node.keywords}
    values = {}
    for node in tree.body:
        if isinstance(node, ast.Assign):
            for target in node.targets:
                names = target.elts if isinstance(target, ast.Tuple) else [target]
                vals = node.value.elts if isinstance(target, ast.Tuple) else [node.value]
                values.update({n.id: ast.literal_eval(v) for n, v in zip(names, vals)})
    return values


@pytest.mark.parametrize("path", CHAPTERS, ids=[p.stem for p in CHAPTERS])
def test_defaults_repeat_the_parameters_cell(path):
    """qt.Defaults(...) must list the parameters cell's own values, or claims would run (or skip) on the wrong run."""
    cells = load(path)["cells"]
    params = _literals(next("".join(c["source"]) for c in cells if "parameters" in c["metadata"].get("tags", [])))
    setup = next("".join(c["source"]) for c in cells if "qt.Defaults(" in "".join(c["source"]))
    defaults = _literals(setup, "qt.Defaults")
    assert defaults == {k: v for k, v in params.items() if k != "threads"}, (defaults, params)
