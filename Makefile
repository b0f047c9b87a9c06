# The two commands of the README: `make book` and `make test`. Both create the environment first.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# Unit tests run in parallel, one worker per core, each worker with one torch thread (tests/conftest.py);
# then the two paper-profile smoke tests, which are most of the unit tests' time, one after the other
# with every core's thread (in a worker of their own they would run on one thread while the other
# worker sits idle).
# Notebooks run one at a time with every core's thread: two kernels of two threads each on two cores
# halve the throughput of both (OpenMP threads wait on each other), and the chapters' recorded numbers
# (protolib/reproduce/results/quick) were made with two threads, which a one-thread kernel would not reproduce
# bit for bit. benchmarks/threads.py measures the arrangements. Sleeping idle threads (OMP_WAIT_POLICY=PASSIVE)
# do not rescue two kernels at once here: every chapter, cold, two at a time (-n 2), took 701 s against
# 626 s one at a time on the same machine, as two trainings fight over the cores; and once chapters 1, 3, 6 and 7 had
# trained everything, the other six took 161 s two at a time against 181 s one at a time, not worth
# a second schedule to keep in step with the chapters. A cell may run 10 minutes (the
# longest takes about 3 cold), so a kernel that stops answering fails its chapter instead of the run;
# --durations prints each chapter's time.
UNIT_WORKERS ?= 2

.PHONY: setup book test test-format test-unit test-notebooks test-reader clean

$(STAMP): requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	$(BIN)/python -m pip install --quiet --no-deps -e .
	$(BIN)/python -c "import torch, torchvision, protolib; print('torch', torch.__version__, '| torchvision', torchvision.__version__, '| protolib', protolib.__version__)"
	touch $(STAMP)

setup: $(STAMP)

book: setup
	$(BIN)/jupyter-book build -W -n --keep-going .
	@echo "Book written to _build/html/index.html"

# Notebook code at most 100 characters a line, formatted by ruff (config: pyproject.toml [tool.ruff]).
test-format: setup
	$(BIN)/ruff format --check book/
	$(BIN)/ruff check --select E501 book/

test-unit: setup
	$(BIN)/python -m pytest -n $(UNIT_WORKERS) -m "not paper_smoke and not reader" tests/
	$(BIN)/python -m pytest -m paper_smoke tests/

test-notebooks: setup
	$(BIN)/python -m pytest --nbmake --nbmake-timeout=600 --durations=0 book/

# A reader's path: the wheel in a fresh environment outside the checkout (made by uv from the package
# index), chapters 1 (core install) and 7 ([book] extras) each alone in an empty folder
# (tests/reader). After test-notebooks, whose cache of trained backbones it shares, so that neither
# chapter trains: the two run at once (two workers), their idle threads sleeping (OMP_WAIT_POLICY=PASSIVE,
# set by the test): 76 to 81 s instead of 128 s on 2 cores. -rP prints each step's time.
test-reader: setup
	$(BIN)/python -m pytest -n 2 -rP -m reader tests/reader

test: test-format test-unit test-notebooks test-reader

clean:
	rm -rf _build
