# Two commands on a fresh machine: `make demo` and `make test`. Each builds the venv it needs.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo up test lint bench clean

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev,devstack]"
	touch $(STAMP)

demo: $(STAMP)  ## start the local stack, onboard and rotate tenants through Prefect
	$(VENV)/bin/tenant-keys demo

up: $(STAMP)  ## local stack + every prefect.yaml deployment on a local worker, until Ctrl-C
	$(VENV)/bin/tenant-keys up

test: $(STAMP)  ## lint and type-check, then every test on two workers (each starts its own local stack)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(PY) -m pytest -n 2 --dist loadscope

bench: $(STAMP)  ## benchmarks, apart from the tests; they print their figures (README, Figures)
	$(PY) benchmarks/rotation.py --tenants 1000 --latency-ms 50 --runs limited,unlimited
	$(PY) benchmarks/revoke.py --events 5 --poll 0.5 --latency-ms 50 --rotation-tenants 2000 \
		--scenarios quiet,crashed-lock,rotation-at-limit,prefect-down
	$(PY) benchmarks/quota.py --tenants 10000
	$(PY) benchmarks/reconcile.py --tenants 300 --broken 10 --latency-ms 50
	$(PY) benchmarks/isolation_modes.py --tenants 10
	$(PY) benchmarks/admin_posture.py --tenants 320 --latency-ms 50

.PHONY: bench-10k
bench-10k: $(STAMP)  ## the 10,000-tenant rotation, one run at the limits
	$(PY) benchmarks/rotation.py --tenants 10000 --latency-ms 50 --runs limited

clean:
	rm -rf $(VENV) .devstack .pytest_cache .ruff_cache
