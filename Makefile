# physgen: two commands do everything on a fresh machine.
#   make demo   - create .venv, install, simulate a small sample and summarise it
#   make test   - create .venv, install, run the test suite
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
DEMO   ?= demo-output

.PHONY: install demo test test-slow lint bench clean

$(VENV)/.installed: pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@# torch first, and only if none is importable: users keep their own (CUDA) builds.
	@$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e ".[dev,eval]"
	@touch $@

install: $(VENV)/.installed

demo: install
	@mkdir -p $(DEMO)
	$(VENV)/bin/physgen simulate --geometry 2 --particle electron --n 1000 --energy 1GeV:100GeV \
		--seed 1 --workers 2 --out $(DEMO)/ds2-cascade.h5
	$(VENV)/bin/physgen simulate --geometry 2 --particle electron --n 1000 --energy 1GeV:100GeV \
		--seed 2 --engine gflash --out $(DEMO)/ds2-gflash.h5
	$(VENV)/bin/physgen validate $(DEMO)/ds2-cascade.h5 --geometry 2
	$(VENV)/bin/physgen info $(DEMO)/ds2-cascade.h5
	$(VENV)/bin/physgen evaluate $(DEMO)/ds2-gflash.h5 $(DEMO)/ds2-cascade.h5 --geometry 2 \
		--mode hist,avg,cls-high,fpd,kpd --label GFlash --out $(DEMO)/gflash-vs-cascade
	@echo "open $(DEMO)/gflash-vs-cascade/report.html"

test: install
	$(PY) -m pytest -q

test-slow: install
	$(PY) -m pytest -q -m slow

lint: install
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/mypy

clean:
	rm -rf $(DEMO) .pytest_cache .mypy_cache .ruff_cache
