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

# The toolkit's pipeline on a laptop CPU: FBNet's differentiable search on the bundled digits (search, derive,
# retrain the argmax), the discovered architecture exported as standalone PyTorch, then the static half:
# the FBNet space, EfficientNet compound scaling, and a quarter-width MobileNetV2 trained and exported.
demo: install
	$(BIN)/nas search recipes/fbnet.yaml -o runs/demo/fbnet --overwrite
	$(BIN)/nas export runs/demo/fbnet --format py,yaml,weights,onnx -o runs/demo/fbnet_export --overwrite
	$(BIN)/nas show search_spaces/fbnet.yaml
	$(BIN)/nas scale --base b0 --phi 3
	$(BIN)/nas scale --base mobilenetv2 --width 0.25 --resolution 0.143 -o runs/demo/mobilenetv2_025.yaml
	$(BIN)/nas train runs/demo/mobilenetv2_025.yaml --data digits --epochs 15 --lr 0.1 -o runs/demo/train --overwrite
	$(BIN)/nas export runs/demo/train --format py,yaml,weights,onnx -o runs/demo/export --overwrite

# One pytest-xdist worker per core; a test module stays on one worker (tests/conftest.py's scheduler), so its
# fixtures are built once. XDIST="-n 0" runs everything in one process.
XDIST ?= -n auto

test: install
	RAY_USAGE_STATS_ENABLED=0 $(BIN)/python -m pytest -q $(XDIST) $(PYTEST_ARGS)

test-fast: install
	RAY_USAGE_STATS_ENABLED=0 $(BIN)/python -m pytest -q -m "not slow" $(XDIST) $(PYTEST_ARGS)

bench: install
	$(BIN)/python bench/cost.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
