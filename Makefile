# Two entry points for a newcomer: `make up` deploys the dev stack, `make test` runs the tests.
# Both use ./venv, the same virtualenv Pulumi itself uses (Pulumi.yaml).

PYTHON ?= python3
VENV := venv
STACK ?= dev
# State lives in the project unless you point PULUMI_BACKEND_URL elsewhere.
export PULUMI_BACKEND_URL ?= file://$(CURDIR)/.pulumi-state
# The Pulumi CLI: the project's pinned copy, or one on PATH that is new enough; without either,
# the script installs the pinned version into .pulumi-cli/ first.
PULUMI = $(VENV)/bin/python scripts/pulumi_cli.py

.PHONY: venv test test-all lint up preview destroy

$(VENV)/.installed: requirements.txt requirements-dev.txt services/*/requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -r requirements-dev.txt $(foreach r,$(wildcard services/*/requirements.txt),-r $(r))
	touch $@

# The policy pack's own virtualenv (PulumiPolicy.yaml names it; pulumi-policy
# pins a protobuf the program's SDKs cannot share). The policy tests build it
# too when it is missing or stale; building it here keeps that out of the test run.
policy/.venv/microstack-requirements.sha256: policy/requirements.txt $(VENV)/.installed
	$(VENV)/bin/python -c "from tests.policy.pack import build_policy_venv; build_policy_venv()"

venv: $(VENV)/.installed policy/.venv/microstack-requirements.sha256

# The levels that need no Docker engine: unit, policy, ci, integration (real
# nginx, HAProxy, PostgreSQL, Redis and pgBackRest on loopback). Each test file
# runs on one worker (its module fixtures are set up once), files in the order
# collected, which puts the long integration files first; one worker more than
# there are cores, since much of an integration test is waiting on its servers.
PYTEST_WORKERS ?= $(shell echo $$(( $$(nproc) + 1 )))
PYTEST_PARALLEL := -n $(PYTEST_WORKERS) --dist loadfile --no-loadscope-reorder

test: venv
	$(VENV)/bin/python -m pytest -m "not engine" $(PYTEST_PARALLEL) $(PYTEST_ARGS)

# Everything: the levels above, then the system levels in a real Docker engine
# (tests/system, marked `engine`), one test at a time: they share the engine,
# and one of them restarts it. What CI runs.
test-all: test
	$(VENV)/bin/python -m pytest -m engine $(PYTEST_ARGS)

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy components __main__.py scripts \
		services/common/microstack_common services/api/microstack_api services/auth/microstack_auth tests

up: venv
	mkdir -p .pulumi-state
	$(PULUMI) stack select --create $(STACK)
	$(PULUMI) up --stack $(STACK)

preview: venv
	mkdir -p .pulumi-state
	$(PULUMI) stack select --create $(STACK)
	$(PULUMI) preview --stack $(STACK)

destroy: venv
	$(PULUMI) destroy --stack $(STACK)
