# Loopline developer entry points. `make` (or `make help`) lists them.
#
# Everything runs from the project venv (.venv), made with Python 3.12 = the Lambda runtime, so tests, type
# checks and `sam build` see the same interpreter and the same pinned libraries as the functions.

SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help
.DELETE_ON_ERROR:

VENV := .venv
BIN := $(abspath $(VENV))/bin
STAMP := $(VENV)/.installed
# checkov lives in its own venv: its pins (boto3 1.35) conflict with SAM CLI's and moto's (requirements/checkov.txt)
CHECKOV_VENV := .venv-checkov
CHECKOV_STAMP := $(CHECKOV_VENV)/.installed
BUILD_DIR := .aws-sam/build
REGION ?= us-east-1
PIPELINE_CONFIG ?= pipeline.yaml
DEMO_ARGS ?=
BENCH_ARGS ?=
LOAD_BENCH_ARGS ?=
DEPLOY_ARGS ?=

# SAM CLI: no telemetry (CI and offline machines). Its commands run with the venv first on PATH, so `python3.12`
# (which `sam build` requires for python3.12 functions) is the venv's own interpreter, found on any machine.
# SAM runs the layers' Makefiles as a separate `make`: MAKEFLAGS/MAKELEVEL from this make (e.g. -k, -j, -n,
# command-line variables) must not leak into them, so they are dropped and PIPELINE_CONFIG is passed explicitly.
export SAM_CLI_TELEMETRY := 0
SAM := env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL PATH="$(BIN):$$PATH" PIPELINE_CONFIG="$(PIPELINE_CONFIG)" $(BIN)/sam

# Python 3.12, found (only when the venv has to be made) as: `python3.12` on PATH; else the newest 3.12 that
# pyenv has installed, even when it is not the active version; else a message saying how to install it.
# Prints the interpreter's absolute path; PYTHON312=/path/to/python3.12 skips the search.
define FIND_PYTHON312
if python3.12 -c '' >/dev/null 2>&1; then
  python3.12 -c 'import sys; print(sys.executable)'
elif command -v pyenv >/dev/null 2>&1 \
    && v="$$(pyenv versions --bare 2>/dev/null | grep -E '^3\.12(\.[0-9]+)?$$' | sort -V | tail -n 1)" \
    && [ -n "$$v" ]; then
  PYENV_VERSION="$$v" python3.12 -c 'import sys; print(sys.executable)' 2>/dev/null \
    || "$$(pyenv root)/versions/$$v/bin/python3.12" -c 'import sys; print(sys.executable)'
else
  echo "Python 3.12 not found (the Lambda runtime is python3.12). Install it, for example:" >&2
  echo "  pyenv install 3.12   |   apt-get install python3.12 python3.12-venv   |   brew install python@3.12" >&2
  echo "or point at one: make PYTHON312=/path/to/python3.12 ..." >&2
  exit 1
fi
endef
export FIND_PYTHON312

.PHONY: help venv test test-fast lint typecheck template-lint pytest demo build size bench deploy training-image clean distclean

help: ## List the targets
	@echo "Loopline - make targets:"
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'
	@echo "Variables: PIPELINE_CONFIG=$(PIPELINE_CONFIG) DEMO_ARGS=... BENCH_ARGS=... LOAD_BENCH_ARGS=... DEPLOY_ARGS=... (e.g. --guided)"

venv: $(STAMP) ## Create/update .venv (Python 3.12, requirements/dev.txt, loopline editable)

# Re-runs only when the pins or the package metadata change. A venv made from another Python is remade.
$(STAMP): requirements/dev.txt pyproject.toml
	@if [ -x $(VENV)/bin/python ] && ! $(VENV)/bin/python -c 'import sys; sys.exit(sys.version_info[:2] != (3, 12))'; then \
		echo "$(VENV) is not Python 3.12: recreating it"; rm -rf $(VENV); fi
	@if [ ! -x $(VENV)/bin/python ]; then \
		py="$${PYTHON312:-$$(bash -c "$$FIND_PYTHON312")}"; \
		echo "creating $(VENV) with $$py"; "$$py" -m venv $(VENV); fi
	$(BIN)/python -m pip install --disable-pip-version-check --quiet -r requirements/dev.txt
	$(BIN)/python -m pip install --disable-pip-version-check --quiet --no-deps -e .
	@touch $@

# ---------------------------------------------------------------- checks
# `make -k test` runs every check and still fails if any one did (.ci/run does this).
test: lint typecheck template-lint pytest ## Lint, type-check, lint/validate template.yaml, run all tests

lint: venv ## ruff check
	$(BIN)/ruff check .

typecheck: venv ## mypy (packages and settings in pyproject.toml)
	$(BIN)/mypy

template-lint: venv $(CHECKOV_STAMP) ## cfn-lint, `sam validate --lint` and checkov on template.yaml (offline)
	$(BIN)/cfn-lint template.yaml
	$(SAM) validate --lint --template-file template.yaml --region $(REGION)
	@# every failed check fails the build; a check that does not apply is skipped in the resource's Metadata, with why
	$(CHECKOV_VENV)/bin/checkov --file template.yaml --framework cloudformation --skip-download --compact --quiet

$(CHECKOV_STAMP): requirements/checkov.txt venv
	@if [ ! -x $(CHECKOV_VENV)/bin/python ]; then \
		py="$$($(BIN)/python -c 'import sys; print(sys._base_executable)')"; "$$py" -m venv $(CHECKOV_VENV); fi
	$(CHECKOV_VENV)/bin/python -m pip install --disable-pip-version-check --quiet -r requirements/checkov.txt
	@touch $@

# The quick loop while editing: no emulator server, no `loopline local up` (moto in-process only). `make test`
# stays the one full command.
test-fast: venv ## pytest without the emulator and e2e tests (unit + moto integration)
	$(BIN)/pytest tests -m "not e2e and not emulator"

# pytest exits 5 when it collects no test: that is a failure here like any other non-zero exit.
# The suite runs on PYTEST_WORKERS processes (pytest-xdist; a test file stays on one worker, so a module's stack is
# started once); most of its time is spent waiting on emulated AWS, so two workers on two cores roughly halve it.
# PYTEST_WORKERS=0 runs it in this process. The grants check reads what every worker's emulators recorded, so it
# runs last, on its own.
PYTEST_WORKERS ?= 2
IAM_AUDIT_LOG := $(VENV)/iam-audit.jsonl
pytest: venv ## pytest: tests/unit, tests/integration, tests/faults, tests/e2e (PYTEST_WORKERS=2)
	@rm -f $(IAM_AUDIT_LOG)
	LOOPLINE_IAM_AUDIT_LOG=$(abspath $(IAM_AUDIT_LOG)) $(BIN)/pytest tests -n $(PYTEST_WORKERS) --dist loadfile \
		--deselect tests/test_zz_grants_exercised.py
	LOOPLINE_IAM_AUDIT_LOG=$(abspath $(IAM_AUDIT_LOG)) $(BIN)/pytest tests/test_zz_grants_exercised.py

# ---------------------------------------------------------------- run
demo: venv ## Run the offline end-to-end demo (loopline demo + DEMO_ARGS)
	$(BIN)/loopline demo $(DEMO_ARGS)

bench: venv ## Run the benchmarks (loopline.bench + BENCH_ARGS; the API load benchmark + LOAD_BENCH_ARGS)
	$(BIN)/python -m loopline.bench $(BENCH_ARGS)
	$(BIN)/python -m loopline.load_bench $(LOAD_BENCH_ARGS)

# ---------------------------------------------------------------- AWS
# SAM's cached build (samconfig.toml) hashes only a layer's ContentUri folder. pipeline.yaml lives outside
# layers/runtime/, so a cached RuntimeLayer would keep bundling an old config: its cache entry is dropped
# before every build (rebuilding it takes about a second; the slow DependenciesLayer stays cached).
define DROP_RUNTIME_LAYER_CACHE
import pathlib, shutil, tomllib
toml = pathlib.Path(".aws-sam/build.toml")
layers = tomllib.loads(toml.read_text()).get("layer_build_definitions", {}) if toml.is_file() else {}
for uuid, layer in layers.items():
    if layer.get("layer_name") == "RuntimeLayer":
        shutil.rmtree(pathlib.Path(".aws-sam/cache", uuid), ignore_errors=True)
endef
export DROP_RUNTIME_LAYER_CACHE

build: venv ## sam build (no container; layers via their Makefiles; PIPELINE_CONFIG=pipeline.yaml)
	@$(BIN)/python -c "$$DROP_RUNTIME_LAYER_CACHE"
	$(SAM) build --template-file template.yaml

size: build ## Unzipped size of each function + its layers vs the 250 MB Lambda limit
	$(BIN)/python -m loopline.size_report --build-dir $(BUILD_DIR)

# Stack settings come from samconfig.toml; the pipeline's values (name, metric, alarm) from `loopline params`,
# read from the same PIPELINE_CONFIG that the build bundled. First deployment to an account:
# make deploy DEPLOY_ARGS=--guided
deploy: build ## sam deploy with samconfig.toml and `loopline params` (+ DEPLOY_ARGS, e.g. --guided)
	params="$$($(BIN)/loopline params --config "$(PIPELINE_CONFIG)")"; \
	$(SAM) deploy --parameter-overrides "$$params" $(DEPLOY_ARGS)

# The SageMaker training image (docs/training-past-one-lambda.md): the runtime layer built with PIPELINE_CONFIG and
# the layers' pinned requirements, built with Docker and pushed to TRAINING_IMAGE_REPOSITORY (an ECR repository;
# log Docker in first: aws ecr get-login-password | docker login --username AWS --password-stdin <registry>).
TRAINING_IMAGE_REPOSITORY ?=
TRAINING_IMAGE_TAG ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo latest)
TRAINING_IMAGE_CONTEXT := build/training-image
training-image: venv ## Build + push the training job image (Docker; TRAINING_IMAGE_REPOSITORY=<ECR repository URI>)
	@test -n "$(TRAINING_IMAGE_REPOSITORY)" || { echo "set TRAINING_IMAGE_REPOSITORY=<account>.dkr.ecr.<region>.amazonaws.com/<name>" >&2; exit 2; }
	rm -rf $(TRAINING_IMAGE_CONTEXT) && mkdir -p $(TRAINING_IMAGE_CONTEXT)/requirements
	cp layers/dependencies/requirements.txt $(TRAINING_IMAGE_CONTEXT)/requirements/dependencies.txt
	cp layers/serving/requirements.txt $(TRAINING_IMAGE_CONTEXT)/requirements/serving.txt
	grep -E '^(boto3|botocore|s3transfer|urllib3)==' requirements/dev.txt > $(TRAINING_IMAGE_CONTEXT)/requirements/boto3.txt
	env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL $(MAKE) --no-print-directory --makefile layers/runtime/Makefile \
		build-RuntimeLayer ARTIFACTS_DIR="$(CURDIR)/$(TRAINING_IMAGE_CONTEXT)/runtime" PIPELINE_CONFIG="$(PIPELINE_CONFIG)"
	docker build --file infra/training-image/Dockerfile --tag "$(TRAINING_IMAGE_REPOSITORY):$(TRAINING_IMAGE_TAG)" \
		$(TRAINING_IMAGE_CONTEXT)
	docker push "$(TRAINING_IMAGE_REPOSITORY):$(TRAINING_IMAGE_TAG)"
	@echo "set in $(PIPELINE_CONFIG): training.image: $(TRAINING_IMAGE_REPOSITORY):$(TRAINING_IMAGE_TAG)"

# ---------------------------------------------------------------- housekeeping
clean: ## Remove build output and tool caches (keeps .venv and local emulator state)
	rm -rf .aws-sam .pytest_cache .mypy_cache .ruff_cache build dist
	find . -path ./$(VENV) -prune -o -type d -name __pycache__ -prune -exec rm -rf {} +

distclean: clean ## clean, and remove .venv and the local emulator state (.loopline)
	rm -rf $(VENV) $(CHECKOV_VENV) .loopline
