"""Every chapter runs through papermill with its documented quick parameters (issue: papermill-executed CI).

A chapter's parameters cell ends with a line ``# Quick run (...): papermill NN_name.ipynb out.ipynb -p NAME VALUE ...``.
Running with those values must finish and never stop on a claim about the default run: such claims sit under
``if at_defaults:`` (see ``qt.Defaults``), which prints a note instead.

How long each quick run took is recorded, never asserted: a slower laptop, Binder or a busy CI machine must pass.
The figures go to ``_build/quick_runs.json`` (or ``$QUANTA_TISSU_QUICK_RUNS``) and are printed as a table at the
end of the session; ``benchmarks/results/quick_runs.json`` keeps a recorded run.
"""
import ast
import json
import os
import re
import shlex

import pytest

from conftest import ROOT, quick_runs_path

CHAPTERS = sorted((ROOT / "chapters").glob("[0-9][0-9]_*.ipynb"))
QUICK = re.compile(r"^# Quick run [^:]*: papermill (?P<name>\S+) \S+ (?P<args>.*)$", re.M)
RUN_TIME = re.compile(r"chapter run time: ([\d.]+) s")


@pytest.fixture(scope="module")
def quick_run_log():
    """Each chapter's quick-run time in seconds (the chapter's own figure, kernel start not counted), written at
    the end of the module for ``conftest.pytest_terminal_summary`` to print."""
    log = {}
    yield log
    if log:
        path = quick_runs_path()
        path.parent.mkdir(parents=True, exist_ok=True)
        record = {"unit": "s", "threads": os.environ.get("OMP_NUM_THREADS"), "chapters": log}
        path.write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")


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
def test_chapter_runs_with_its_quick_parameters(path, tmp_path, quick_run_log):
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
    timing = RUN_TIME.search(text)
    assert timing, f"{path.name}: the last cell should print 'chapter run time: N s'"
    quick_run_log[path.stem] = {"seconds": round(float(timing[1]), 1), "parameters": params}  # recorded, not judged
