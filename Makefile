# Two commands: `make lab` sets up and opens the course; `make test` sets up and runs every test.
PYTHON ?= python3.11
VENV   ?= .venv
BIN     = $(VENV)/bin

.PHONY: lab test setup lint clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)

$(VENV)/.installed: requirements.txt requirements-dev.txt | $(BIN)/python
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

setup: $(VENV)/.installed

lab: setup
	$(BIN)/jupyter lab notebooks/

lint: setup
	$(BIN)/ruff check utils tests benchmarks solutions

test: setup
	$(BIN)/ruff check utils tests benchmarks solutions
	COURSE_PROFILE=smoke COURSE_OFFLINE=$${COURSE_OFFLINE-1} MPLBACKEND=agg \
		$(BIN)/python -m pytest -n 2

clean:
	rm -rf $(VENV) runs
