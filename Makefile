# Two commands set everything up on a fresh machine: `make demo` and `make test`.
# Each creates .venv when missing and installs the project into it; with nothing changed, neither reinstalls.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint install gpu-check clean

# Installed once per change of pyproject.toml; torch comes first so pip takes the pinned local wheels.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check torch==2.14.1 torchvision==0.29.1
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

# NeRF on a scene rendered from code (no download): FR vs baseline Instant-NGP, 100 steps each (3–8 min each on
# 2 cores; a step budget stays fair on a busy machine), then the test-split table, test renders and
# outputs/demo/views.png. Run again: finished runs are kept.
demo: $(STAMP)
	$(BIN)/frinr make-scene --out outputs/demo/scene
	$(BIN)/frinr compare --methods frinr-ngp frinr-ngp-baseline --data outputs/demo/scene --steps 100 --out outputs/demo

test: $(STAMP)
	$(BIN)/python -m pytest -q --durations=15

# On a CUDA machine: backends, FR gradients, mixed precision with the viewer's thread, torch backends, DVGO and a
# CPU checkpoint on the GPU, in under 5 minutes (outputs/gpu_check/). Without CUDA: one line, nothing run, exit 0.
gpu-check: $(STAMP)
	$(BIN)/frinr gpu-check

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

clean:
	rm -rf $(VENV) outputs
