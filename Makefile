# medlabel: the three commands a newcomer needs.
#   make demo   create .venv, install everything, run the demo on real sample studies
#   make test   create/update .venv with dev extras, lint and type-check, run all tests
#   make bench  run the quick benchmarks (results land in benchmarks/results/)
#   make bench-classify   the long training benchmarks, about 2 h on 2 cores: PneumoniaMNIST
#                         (3 x up to 10 min), Kermany (3 x 20 min plus reading the images),
#                         then robustness of cxr-pneumonia (about 13 min)
#   make bench-segment    segmentation: recipes, JSRT (5 folds x 10 min), hippocampus (95 min
#                         budget), inference, resolution
#   make bench-annotate   annotation job throughput vs a MONAI loop; active-learning curve;
#                         fine-tune vs anew over review rounds (about 50 min)

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.medlabel-installed
DEMO_OUT ?= demo-output

.PHONY: demo test bench bench-classify bench-segment bench-annotate lint install clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip setuptools wheel numpy
	$(BIN)/python -m pip install --quiet --no-build-isolation pyradiomics==3.0.1
	$(BIN)/python -m pip install --quiet -e ".[dev,radiomics,ray]"
	# MONAI Label's client, for the API compatibility test (its pins conflict: no deps)
	$(BIN)/python -m pip install --quiet --no-deps "monailabel>=0.8"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/medlabel demo --out $(DEMO_OUT)

test: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/mypy
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python benchmarks/run.py

bench-classify: $(STAMP)
	$(BIN)/python benchmarks/bench_pneumoniamnist.py --budget-minutes 10 --seeds 3
	$(BIN)/python benchmarks/bench_kermany.py --budget-minutes 20 --seeds 3 --bf16
	$(BIN)/python benchmarks/bench_robustness.py

bench-segment: $(STAMP)
	$(BIN)/python benchmarks/bench_recipes.py
	$(BIN)/python benchmarks/bench_jsrt.py --budget-minutes 10 --folds 5
	$(BIN)/python benchmarks/bench_hippocampus.py --budget-minutes 95
	$(BIN)/python benchmarks/bench_seg_inference.py
	$(BIN)/python benchmarks/bench_seg_resolution.py

bench-annotate: $(STAMP)
	$(BIN)/python benchmarks/bench_annotate.py
	$(BIN)/python benchmarks/bench_active_learning.py
	$(BIN)/python benchmarks/bench_review_rounds.py

clean:
	rm -rf $(VENV) $(DEMO_OUT) .pytest_cache .ruff_cache .mypy_cache
