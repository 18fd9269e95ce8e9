# physgen: two commands do everything on a fresh machine.
#   make demo   - create .venv, install, simulate -> train -> generate -> evaluate -> report,
#                 then the shipped pretrained GAN against fresh cascade photons
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
	@# pythia8mc only as a wheel: some indexes' newest release is a long C++ source build
	$(PY) -m pip install --quiet --only-binary pythia8mc -e ".[dev,plot,events]"
	@touch $@

install: $(VENV)/.installed

demo: install
	@mkdir -p $(DEMO)
	@# 1. reference physics: cascade showers for training and an independent reference
	$(VENV)/bin/physgen simulate --geometry 2 --particle electron --n 3000 --energy 1GeV:100GeV \
		--seed 1 --workers 2 --out $(DEMO)/ds2-train.h5
	$(VENV)/bin/physgen simulate --geometry 2 --particle electron --n 1000 --energy 1GeV:100GeV \
		--seed 2 --workers 2 --out $(DEMO)/ds2-reference.h5
	$(VENV)/bin/physgen validate $(DEMO)/ds2-train.h5 --geometry 2
	$(VENV)/bin/physgen info $(DEMO)/ds2-train.h5
	@# 2. train a small two-stage flow (a few minutes on 2 CPU cores)
	rm -rf $(DEMO)/run-flow
	$(VENV)/bin/physgen train --model flow --preset tiny --geometry 2 --data $(DEMO)/ds2-train.h5 \
		--out $(DEMO)/run-flow --max-time 4m
	@# 3. generate showers for the reference energies, time the surrogate
	$(VENV)/bin/physgen generate $(DEMO)/run-flow --energies-from $(DEMO)/ds2-reference.h5 \
		--out $(DEMO)/ds2-flow.h5 --seed 7
	$(VENV)/bin/physgen timing --geometry 2 --run $(DEMO)/run-flow --batch-sizes 1,100,1000 --repeats 3
	@# 4. judge it against the reference with the CaloChallenge metrics
	$(VENV)/bin/physgen evaluate $(DEMO)/ds2-flow.h5 $(DEMO)/ds2-reference.h5 --geometry 2 \
		--mode hist,avg,cls-high,fpd,kpd --label "physgen flow" --out $(DEMO)/flow-vs-cascade
	@# 5. a working surrogate: the GAN shipped with physgen (physgen generate --pretrained list)
	@#    against fresh cascade photons it never saw (dataset-1 energies, 256 MeV - 4 TeV)
	$(VENV)/bin/physgen simulate --geometry 1-photons --particle photon --n 1000 --energy ds1 \
		--seed 3 --workers 2 --out $(DEMO)/ds1-reference.h5
	$(VENV)/bin/physgen generate --pretrained gan-1-photons --energies-from $(DEMO)/ds1-reference.h5 \
		--out $(DEMO)/ds1-gan.h5 --seed 7
	$(VENV)/bin/physgen evaluate $(DEMO)/ds1-gan.h5 $(DEMO)/ds1-reference.h5 --geometry 1-photons \
		--mode hist,cls-high --label "physgen GAN (pretrained)" --out $(DEMO)/gan-vs-cascade
	@echo "open $(DEMO)/flow-vs-cascade/report.html and $(DEMO)/gan-vs-cascade/report.html"

test: install
	$(PY) -m pytest -q

test-slow: install
	$(PY) -m pytest -q -m slow

lint: install
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/mypy

clean:
	rm -rf $(DEMO) .pytest_cache .mypy_cache .ruff_cache
