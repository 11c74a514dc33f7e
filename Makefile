# The two commands a newcomer needs: `make demo` and `make test` (both install into .venv first).
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
# CPU build of torch on machines without CUDA; a CUDA user runs
#   make install TORCH_SPEC="torch --index-url https://download.pytorch.org/whl/cu124"
TORCH_SPEC ?= torch==2.13.0
PYTEST_ARGS ?=

.PHONY: install demo test test-fast bench clean

$(BIN)/nas: pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet $(TORCH_SPEC)
	$(BIN)/pip install --quiet -e ".[dev,onnx]"
	touch $(BIN)/nas

install: $(BIN)/nas

demo: install
	$(BIN)/nas show search_spaces/fbnet.yaml
	$(BIN)/nas count search_spaces/fbnet.yaml --sample 0
	$(BIN)/nas show search_spaces/efficientnet_b0.yaml
	$(BIN)/nas count search_spaces/efficientnet_b0.yaml

test: install
	RAY_USAGE_STATS_ENABLED=0 $(BIN)/python -m pytest -q $(PYTEST_ARGS)

test-fast: install
	RAY_USAGE_STATS_ENABLED=0 $(BIN)/python -m pytest -q -m "not slow" $(PYTEST_ARGS)

bench: install
	$(BIN)/python bench/cost.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
