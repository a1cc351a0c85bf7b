# Marquee: `make demo` runs a whole chain on this machine, `make test` runs the suite.
# Both create .venv and install what they need first (Debian packages too, when missing and root).

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
# The dashboard's chart library, from the npm registry at the version package-lock.json pins (never a CDN).
ASSETS := cloud/web/assets
CHARTS := cloud/web/static/vendor/chart.umd.min.js

.PHONY: install system-deps test lint demo bench clean

$(STAMP): pyproject.toml
	sh deploy/debian-packages.sh python
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[edge,hub,demo,test]'
	touch $(STAMP)

$(CHARTS): $(ASSETS)/package.json $(ASSETS)/package-lock.json
	sh deploy/debian-packages.sh web
	npm ci --prefix $(ASSETS) --no-audit --no-fund --loglevel=error
	mkdir -p $(dir $(CHARTS))
	cp $(ASSETS)/node_modules/chart.js/dist/chart.umd.min.js $(CHARTS)

install: $(STAMP) $(CHARTS)

system-deps:
	sh deploy/debian-packages.sh test

lint: install
	$(BIN)/ruff check .
	$(BIN)/lint-imports
	$(BIN)/mypy protocol edge cloud

# Two workers, one test file each at a time (a file's module fixtures run once): every test owns its broker,
# ports, schema and folders. `make test PYTEST_WORKERS=0` runs the suite in one process.
PYTEST_WORKERS ?= 2

test: install system-deps lint
	$(BIN)/pytest -n $(PYTEST_WORKERS) --dist loadfile

demo: install
	sh deploy/debian-packages.sh demo
	$(BIN)/python deploy/demo.py

bench: install
	$(BIN)/python bench/run_all.py

clean:
	rm -rf $(VENV) .demo .pytest_cache .mypy_cache .ruff_cache *.egg-info $(ASSETS)/node_modules $(dir $(CHARTS))
