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
	$(PY) -m pytest -n 2 --dist loadgroup

bench: $(STAMP)  ## benchmarks, apart from the tests; they print their figures
	$(PY) benchmarks/rotation.py
	$(PY) benchmarks/revoke.py
	$(PY) benchmarks/quota.py
	$(PY) benchmarks/reconcile.py
	$(PY) benchmarks/isolation_modes.py

clean:
	rm -rf $(VENV) .devstack .pytest_cache .ruff_cache
