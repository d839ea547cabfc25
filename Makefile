PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: serve test lint i18n clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

# The service on 127.0.0.1:8000, and a sample company site showing the widget on 127.0.0.2:8001.
serve: $(STAMP)
	$(BIN)/portal demo
	$(BIN)/portal sample-site & $(BIN)/portal serve

# axe-core for the accessibility tests (skipped where npm is missing; required on CI).
node_modules/.installed: package.json package-lock.json
	command -v npm >/dev/null && npm ci --no-audit --no-fund --loglevel=error && touch $@ || true

# Two workers; a test module stays on one of them (tests/security starts one server per module).
test: $(STAMP) node_modules/.installed
	$(BIN)/ruff format --check portal tests benchmarks
	$(BIN)/ruff check portal tests benchmarks
	$(BIN)/mypy
	$(BIN)/python -m pytest -n 2 --dist loadscope

lint: $(STAMP)
	$(BIN)/ruff format --check portal tests benchmarks
	$(BIN)/ruff check portal tests benchmarks
	$(BIN)/mypy

# Refresh the message catalogs after changing UI strings: extract, then merge into each locale.
i18n: $(STAMP)
	$(BIN)/pybabel extract -F babel.cfg -o portal/locales/messages.pot --no-location --sort-output .
	for l in en nb zh_Hans ja ar; do \
	  test -f portal/locales/$$l/LC_MESSAGES/messages.po \
	    && $(BIN)/pybabel update -i portal/locales/messages.pot -d portal/locales -l $$l --no-fuzzy-matching \
	    || $(BIN)/pybabel init -i portal/locales/messages.pot -d portal/locales -l $$l; \
	done

clean:
	rm -rf $(VENV) data
