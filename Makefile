# Two commands on a fresh machine: `make run` and `make test`. Both create .venv and install the project.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint screenshots clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

# On a laptop, agents on this machine (a local vLLM, say) may be registered: loopback is allowed here only.
run: $(STAMP)
	RAY_USAGE_STATS_ENABLED=0 SWARM_AGENT_POLICY__ALLOW_NETWORKS='["127.0.0.0/8", "::1/128"]' $(BIN)/swarm-route serve

lint: $(STAMP)
	$(BIN)/ruff check swarm_route tests

# pytest exits 5 when it collected nothing: that must fail, never pass.
test: $(STAMP) lint
	RAY_USAGE_STATS_ENABLED=0 $(BIN)/python -m pytest -q; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests" >&2; exit 1; fi; exit $$rc

# A PNG of every console page in screenshots/ (not committed), from the browser test; needs chromium.
screenshots: $(STAMP)
	RAY_USAGE_STATS_ENABLED=0 CONSOLE_SCREENSHOTS=screenshots $(BIN)/python -m pytest -q tests/api/test_console_browser.py
	@ls screenshots/*.png

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
