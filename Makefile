# The course in two commands:  `make lab`  (set up and open JupyterLab)  and  `make test`.
# Everything lives in .venv; a second run reuses it and takes seconds.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
DATA   := data/synthetic/.complete
KERNEL := pose-course

.PHONY: help setup lab test data demo book bench figures release student-edition clean

help:
	@echo "make lab      set up (venv, packages, kernel, data) and open JupyterLab on notebooks/"
	@echo "make test     set up, then run the whole test suite"
	@echo "make data     make the default synthetic data set under data/synthetic/"
	@echo "make demo     serve the lecture demos (demos/lecture.ipynb) with Voila on 127.0.0.1 (DEMO_PORT=8866)"
	@echo "make book     run every chapter (full profile; FAST=1 for the CI profile) into build/book/"
	@echo "make bench    run every benchmark, print the figures, write bench/results.json"
	@echo "make figures  draw the README's gallery into docs/figures/ (trains the tiny SimpleBaseline once if needed)"
	@echo "make release  regenerate the student notebooks from solutions/ (instructors)"
	@echo "make student-edition DIR=path   write what a graded class gets: no solutions, no hidden tests"
	@echo "make clean    remove the virtual environment and generated data"

# -- set-up -------------------------------------------------------------------
$(STAMP): requirements.txt pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 10))' || \
		{ echo "Python 3.10 or newer is needed (found: $$($(PYTHON) --version 2>&1)); set PYTHON=python3.11"; exit 1; }
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade --quiet pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	$(BIN)/python -m ipykernel install --sys-prefix --name $(KERNEL) --display-name "Pose course (.venv)"
	@touch $(STAMP)

setup: $(STAMP) $(DATA)

$(DATA): $(STAMP)
	$(BIN)/python data_scripts/make_synthetic.py --default

data: $(DATA)

# -- the two commands of the README ---------------------------------------------
# Jupyter refuses to run as root (a Docker container, many cloud GPU machines) unless told.
USER_ID ?= $(shell id -u)
ROOT_FLAG := $(if $(filter 0,$(USER_ID)),--allow-root,)

lab: setup
	@if [ -n "$(ROOT_FLAG)" ]; then \
		echo "Running as root: starting Jupyter with --allow-root."; \
	fi; \
	if [ "$$(uname)" != "Darwin" ] && [ -z "$$DISPLAY" ] && [ -z "$$WAYLAND_DISPLAY" ]; then \
		echo "No display found: open the URL printed below in your browser."; \
		$(BIN)/jupyter lab --no-browser --ip=127.0.0.1 --notebook-dir=notebooks $(ROOT_FLAG); \
	else \
		$(BIN)/jupyter lab --ip=127.0.0.1 --notebook-dir=notebooks $(ROOT_FLAG); \
	fi

test: setup
	@$(BIN)/python -m pytest $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests: the suite is broken"; exit 1; fi; \
	exit $$rc

# -- lectures --------------------------------------------------------------------
DEMO_PORT ?= 8866

demo: setup
	@echo "The prediction browser shows the course's small SimpleBaseline: loading it from data/checkpoints/"
	@echo "(the first time it is trained there once, which takes a few minutes on a CPU)."
	@$(BIN)/python -c 'from course_lib import zoo; zoo.pretrained("simplebaseline_tiny")'
	@echo "Serving demos/lecture.ipynb (code hidden) at  http://127.0.0.1:$(DEMO_PORT)/  -- open it in a browser; Ctrl+C stops."
	$(BIN)/voila --no-browser --Voila.ip=127.0.0.1 --port=$(DEMO_PORT) --Voila.port_retries=0 \
		--strip_sources=True demos/lecture.ipynb

# -- the whole course, and its benchmarks --------------------------------------------
book: setup
	$(BIN)/python -m course_lib.book $(if $(FAST),--fast) $(if $(CHAPTERS),--chapters $(CHAPTERS))

bench: setup
	$(BIN)/python bench/run.py

# -- the README's gallery: docs/figures/*.png, drawn from a run ------------------------
figures: setup
	$(BIN)/python -m course_lib.figures docs/figures

# -- instructors ------------------------------------------------------------------
release: setup
	$(BIN)/python -m course_lib.grading release

student-edition: setup
	@test -n "$(DIR)" || { echo "usage: make student-edition DIR=../pose-course-students"; exit 2; }
	$(BIN)/python -m course_lib.grading release --student-dir "$(DIR)"

clean:
	rm -rf $(VENV) data/synthetic build
