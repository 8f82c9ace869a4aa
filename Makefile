# cronium — the README's commands.
VENV ?= .venv
CRONIUM = $(VENV)/bin/cronium
PYTEST = $(VENV)/bin/pytest

.PHONY: setup demo test test-slow test-unit test-integration bench clean-docker

## Install what is missing (Docker engine, venv, images, managed Redis). Idempotent.
setup:
	./scripts/setup.sh

## Set up, then run the example job.
demo: setup
	$(CRONIUM) run examples/hello.py --input '{"name": "cronium"}'

## The test suite (unit + integration against the real engine and Redis, the quick swarm tests included:
## docs/swarm-setup.md), without the slow suites. CRONIUM_SWARM_TESTS=0 leaves the swarm modules out.
test: setup
	$(PYTEST) -q -m "not slow"

## The slow suites (marked `slow`: 60-job runs, the compose stack, the helper package build, the two-node
## swarm rig and its tests, the executor conformance kit on a swarm); CI runs them after `make test`.
test-slow: setup
	$(PYTEST) -q -m slow

test-unit: setup
	$(PYTEST) -q -m "not integration"

test-integration: setup
	$(PYTEST) -q -m integration

## All benchmarks, side by side with bare Docker; prints a table, writes benchmarks/results/*.json.
bench: setup
	$(VENV)/bin/python -m benchmarks

## Remove what cronium left in Docker (normally nothing): `cronium gc`.
clean-docker:
	$(CRONIUM) gc
