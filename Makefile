# make run | make test | make lint | make bench | make bench-class | make screenshots | make serve N=2
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
TEST_WORKERS ?= auto

.PHONY: run test lint format bench bench-class screenshots clean serve

$(PY):
	python3 -m venv $(VENV)

# Stamp files: reinstall only when the requirements change.
$(VENV)/.runtime: requirements.txt | $(PY)
	$(PIP) install -q -r requirements.txt
	touch $@

$(VENV)/.dev: requirements-dev.txt $(VENV)/.runtime
	$(PIP) install -q -r requirements-dev.txt
	touch $@

run: $(VENV)/.runtime
	$(PY) -m streamlit run app.py

# N app servers behind nginx with sticky sessions, on 127.0.0.1 (deploy/serve.py; Ctrl-C stops all)
N ?= 2
serve: $(VENV)/.dev
	$(PY) -m deploy.serve --servers $(N)

# Two passes: the tests that can share the machine on every core (pytest-xdist), then the serial
# ones (servers, browsers, wall-clock measurements) alone. `pytest` by itself still runs everything.
# --dist worksteal: a worker out of tests takes half of another's queue (the default hands each
# worker a fixed first chunk, and one chunk held every long AppTest walk).
test: $(VENV)/.dev
	$(PY) -m pytest -n $(TEST_WORKERS) --dist worksteal -m "not serial" --durations=15
	$(PY) -m pytest -m serial --durations=10

lint: $(VENV)/.dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(VENV)/.dev
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

bench: $(VENV)/.dev
	$(PY) -m bench

# A class on one server: 40 real browser sessions at once, the server's CPU time and memory.
bench-class: $(VENV)/.dev
	$(PY) -m bench --sessions

screenshots: $(VENV)/.dev
	SCREENSHOTS=docs/screenshots $(PY) -m pytest tests/test_browser.py -q

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis
