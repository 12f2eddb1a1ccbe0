# pregbridge — one gate: `make check` (ruff + mypy + import-linter + tests).
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
DEMO   ?= var/demo
PERSONS ?= 5000
DEMO_USER ?= demo
DEMO_PASSWORD ?= demo-password-1

.PHONY: venv run demo test check lint typecheck imports bench clean

# The runtime alone (what `make run` needs): pregbridge and its install_requires.
$(BIN)/pregbridge: setup.cfg pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit("pregbridge needs Python 3.11 or newer") if sys.version_info < (3, 11) else None'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e .
	@touch $@

# The development toolchain on top (tests, lint, types): what `make test` and `make check` need.
$(VENV)/.test-extras: $(BIN)/pregbridge
	$(BIN)/python -m pip install --quiet -e ".[test]"
	@touch $@

venv: $(VENV)/.test-extras

# Generate a synthetic demo population (once), load it into the embedded SQLite store, apply its
# change feed, and serve.
run: $(BIN)/pregbridge
	@test -f $(DEMO)/manifest.json || $(BIN)/pregbridge demo-data --persons $(PERSONS) --seed 1 --out $(DEMO)
	@test -f var/pregbridge.sqlite || ( $(BIN)/pregbridge load $(DEMO) && $(BIN)/pregbridge ingest $(DEMO)/feed )
	@test -f var/.demo-account || ( echo "$(DEMO_PASSWORD)" | $(BIN)/pregbridge users add $(DEMO_USER) \
		--profile full --password-stdin && touch var/.demo-account )
	@echo "demo account: $(DEMO_USER) / $(DEMO_PASSWORD) (HTTP Basic or WS-Security UsernameToken)"
	$(BIN)/pregbridge serve

test: venv
	$(BIN)/python -m pytest -q -n 2 --dist loadgroup

lint: venv
	$(BIN)/ruff check .

typecheck: venv
	$(BIN)/mypy store adapters server filematch upstream

imports: venv
	$(BIN)/lint-imports

check: lint typecheck imports test

bench: venv
	$(BIN)/python -m benchmarks store --num 100000

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
