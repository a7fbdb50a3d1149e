# resolver-mesh: `make demo` runs the mesh on a local AWS emulator; `make test` runs every check.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CHECKOV_STAMP := $(VENV)/checkov/.installed

.PHONY: demo test lint build clean

$(STAMP): requirements-dev.txt pyproject.toml layers/core/requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $(STAMP)

# checkov gets a venv of its own inside .venv: it pins an older boto3 than the product.
$(CHECKOV_STAMP): requirements-security.txt $(STAMP)
	$(PYTHON) -m venv $(VENV)/checkov
	$(VENV)/checkov/bin/pip install --quiet -r requirements-security.txt
	touch $(CHECKOV_STAMP)

demo: $(STAMP)
	$(BIN)/resolver-mesh demo

test: $(STAMP) $(CHECKOV_STAMP)
	$(BIN)/pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# Needs the SAM CLI (in a venv of its own: it pins an older boto3; SAM=/tmp/sam/bin/sam) and
# python3.12 on PATH.
SAM ?= sam
build:
	$(SAM) build

clean:
	rm -rf $(VENV) .aws-sam .mypy_cache .ruff_cache .pytest_cache

# Deploy forwarder.yaml to every Region in MeshRegions of samconfig.toml's CONFIG_ENV (and the
# home Region), after the home stack: `make deploy-forwarders CONFIG_ENV=prod`. Needs the SAM
# and AWS CLIs (SAM=/tmp/sam/bin/sam); FORWARDER_FLAGS=--dry-run prints the commands only.
CONFIG_ENV ?= default
FORWARDER_FLAGS ?=
.PHONY: deploy-forwarders
deploy-forwarders:
	scripts/deploy-forwarders.sh --config-env $(CONFIG_ENV) $(FORWARDER_FLAGS)

# The performance figures of the README's "Performance" section (about 90 s and 20 s here):
# full meshes of 3, 8, 16 and 30 Regions on the local emulator, then the cold start.
.PHONY: bench
bench: $(STAMP)
	$(BIN)/python benchmarks/mesh_benchmark.py
	$(BIN)/python benchmarks/cold_start.py --importtime
