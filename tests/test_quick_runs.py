"""Every chapter runs through papermill with its documented quick parameters (issue: papermill-executed CI).

A chapter's parameters cell ends with a line ``# Quick run (...): papermill NN_name.ipynb out.ipynb -p NAME VALUE ...``.
Running with those values must finish in seconds and never stop on a claim about the default run: such claims
sit under ``if at_defaults:`` (see ``qt.Defaults``), which prints a note instead.
"""
import ast
import json
import re
import shlex
import time

import pytest

from conftest import ROOT

CHAPTERS = sorted((ROOT / "chapters").glob("[0-9][0-9]_*.ipynb"))
QUICK = re.compile(r"^# Quick run [^:]*: papermill (?P<name>\S+) \S+ (?P<args>.*)$", re.M)
BUDGET_S = 30  # the chapter's own run time with the quick parameters (kernel start not counted)


def parameters_cell(nb) -> str:
    return next("".join(c["source"]) for c in nb["cells"] if "parameters" in c["metadata"].get("tags", []))


def _value(text: str):
    """papermill's reading of ``-p NAME VALUE``: a number or a boolean when it parses as one, else a string."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def quick_parameters(nb, filename: str) -> dict:
    match = QUICK.search(parameters_cell(nb))
    assert match, f"{filename}: the parameters cell needs a '# Quick run (...): papermill {filename} out.ipynb -p ...' line"
    assert match["name"] == filename, f"the quick-run line names {match['name']}, not {filename}"
    words = shlex.split(match["args"])
    assert len(words) % 3 == 0 and words[::3] == ["-p"] * (len(words) // 3), f"expected '-p NAME VALUE' pairs: {words}"
    return {name: _value(value) for name, value in zip(words[1::3], words[2::3])}


@pytest.mark.parametrize("path", CHAPTERS, ids=[p.stem for p in CHAPTERS])
def test_chapter_runs_with_its_quick_parameters(path, tmp_path):
    papermill = pytest.importorskip("papermill")
    import quanta_tissu as qt

    try:
        qt.data.corpus_path("tinyshakespeare", download=False)
    except qt.data.CorpusError as err:
        pytest.skip(f"corpus not available: {err}")
    nb = json.loads(path.read_text(encoding="utf-8"))
    params = quick_parameters(nb, path.name)
    out = tmp_path / path.name
    papermill.execute_notebook(str(path), str(out), parameters=params, cwd=str(path.parent), progress_bar=False)
    cells = json.loads(out.read_text(encoding="utf-8"))["cells"]
    text = "".join("".join(o.get("text", "")) for c in cells if c["cell_type"] == "code" for o in c.get("outputs", []))
    assert "Parameters differ from the chapter's defaults" in text, "the quick run should be told it is not the default run"
    elapsed = float(re.search(r"chapter run time: ([\d.]+) s", text)[1])
    assert elapsed < BUDGET_S, f"{path.name} took {elapsed:.1f} s with its quick parameters {params}; budget {BUDGET_S} s"
