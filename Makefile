# The two commands of the README: `make book` and `make test`. Both create the environment first.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# Tests and notebooks in parallel: one worker per core on the 2-core machines we plan for.
NB_WORKERS ?= 2

.PHONY: setup book test test-unit test-notebooks clean

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

test-unit: setup
	$(BIN)/python -m pytest -n $(NB_WORKERS) tests/

test-notebooks: setup
	$(BIN)/python -m pytest --nbmake --nbmake-timeout=1800 -n $(NB_WORKERS) book/

test: test-unit test-notebooks

clean:
	rm -rf _build
