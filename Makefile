# QuantaTissu: the two commands are `make book` and `make test` (see README.md).
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
VENV ?= .venv
PY := $(VENV)/bin/python
export PATH := $(abspath $(VENV))/bin:$(PATH)
# Chapters run on 2 threads, like a learner's laptop and CI.
export OMP_NUM_THREADS ?= 2
STAMP := $(VENV)/.installed
BOOK_FLAGS := --all -W -n --keep-going
# The cell timeout guards against a hung kernel only, never judges speed: on a busy host (two runs sharing 2 cores)
# one training cell can take many minutes.
NBVAL_FLAGS := --nbval --nbval-current-env --nbval-sanitize-with tools/nbval_sanitize.cfg --nbval-cell-timeout 1800 -p no:cacheprovider

.PHONY: help install assets book book-stored test unit nbval browser execute lab clean

help:
	@echo "make book   build the executed HTML book in _build/html (creates .venv if missing)"
	@echo "make test   unit tests, exercise checks, every chapter's quick papermill run, nbval over every chapter,"
	@echo "            strict book build, browser check; with an empty temporary course cache"
	@echo "make lab    JupyterLab on the course"
	@echo "make execute [NB=chapters/07_training.ipynb]  re-execute chapters in place (all by default)"
	@echo "make clean  remove _build (keeps .venv)"

$(STAMP): requirements.txt requirements-test.txt pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -r requirements-test.txt -e .
	touch $(STAMP)

install: $(STAMP)

assets: $(STAMP)
	$(PY) tools/fetch_book_assets.py

book: install assets
	rm -rf _build/html _build/.doctrees
	jupyter-book build . $(BOOK_FLAGS)
	@echo "The book: $(abspath _build/html/index.html)"

unit: install
	$(PY) -m pytest tests --durations=15

nbval: install
	$(PY) -m pytest chapters $(NBVAL_FLAGS)

browser: install
	$(PY) tools/check_pages.py _build/html

# The strict book build inside `make test` renders the stored outputs that nbval has just shown to
# reproduce, instead of executing every chapter a second time (`make book` always executes).
book-stored: install assets
	rm -rf _build/html _build/.doctrees
	sed 's/execute_notebooks: force/execute_notebooks: "off"/' _config.yml > .config.stored.yml
	grep -q 'execute_notebooks: "off"' .config.stored.yml || { echo "_config.yml lost 'execute_notebooks: force'"; exit 1; }
	jupyter-book build . --config .config.stored.yml $(BOOK_FLAGS)

# `make test` is always a learner's first run: an empty, temporary course cache (QUANTA_TISSU_CACHE), so nothing
# passes only because an earlier run left a trained model or tokenizer behind.
test: install assets
	export QUANTA_TISSU_CACHE="$$(mktemp -d -t qt-cache-XXXXXX)"; trap 'rm -rf "$$QUANTA_TISSU_CACHE"' EXIT; \
	echo "course cache for this run: $$QUANTA_TISSU_CACHE (empty)"; \
	$(MAKE) --no-print-directory unit nbval book-stored browser

# Re-execute chapters in place after a change, storing their outputs: make execute NB="chapters/07_training.ipynb"
NB ?= $(wildcard chapters/[0-9][0-9]_*.ipynb)
execute: install
	for nb in $(NB); do echo "executing $$nb"; \
	  jupyter nbconvert --to notebook --execute --inplace --ExecutePreprocessor.timeout=1800 "$$nb"; done

lab: install
	jupyter lab

clean:
	rm -rf _build
