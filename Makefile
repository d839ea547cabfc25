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

serve: $(STAMP)
	$(BIN)/portal demo
	$(BIN)/portal serve

test: $(STAMP)
	$(BIN)/ruff check portal tests benchmarks
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff format --check portal tests benchmarks
	$(BIN)/ruff check portal tests benchmarks

# Refresh the message catalogs after changing UI strings: extract, then merge into each locale.
i18n: $(STAMP)
	$(BIN)/pybabel extract -F babel.cfg -o portal/locales/messages.pot --no-location --sort-output .
	for l in en nb zh_Hans ja; do \
	  test -f portal/locales/$$l/LC_MESSAGES/messages.po \
	    && $(BIN)/pybabel update -i portal/locales/messages.pot -d portal/locales -l $$l --no-fuzzy-matching \
	    || $(BIN)/pybabel init -i portal/locales/messages.pot -d portal/locales -l $$l; \
	done

clean:
	rm -rf $(VENV) data
