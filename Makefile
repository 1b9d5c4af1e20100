# Two commands: `make lab` sets up and opens the course; `make test` sets up and runs every test.
# For presenters and readers: `make slides`, `make site` (both into _build/), `make wheelhouse` (PRESENTING.md).
PYTHON ?= python3.11
VENV   ?= .venv
BIN     = $(VENV)/bin
# JupyterLab refuses to start as root (Docker images, Colab-like hosts) unless told; tell it only then.
ROOT_FLAG := $(shell [ "$$(id -u)" = 0 ] && echo --allow-root)
LAB_ARGS ?=
# make wheelhouse: every wheel of REQS into WHEELHOUSE; make setup-offline installs from it with no network.
WHEELHOUSE ?= wheelhouse
REQS       ?= requirements.txt

.PHONY: lab test setup lint clean slides site browser wheelhouse setup-offline

$(BIN)/python:
	$(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)

$(VENV)/.installed: requirements.txt requirements-dev.txt | $(BIN)/python
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

setup: $(VENV)/.installed

lab: setup
	$(BIN)/jupyter lab notebooks/ $(ROOT_FLAG) $(LAB_ARGS)

slides: setup
	$(BIN)/python publish/build.py slides

site: setup
	$(BIN)/python publish/build.py site

# Headless Chromium for the browser tests: Debian's package (Playwright drives it; it downloads no browser).
browser:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium; \
	  else \
	    echo "make browser: no Chromium; install it (Debian/Ubuntu: sudo apt-get install chromium) or the browser tests skip"; \
	  fi; }

wheelhouse: $(BIN)/python
	$(BIN)/pip download --disable-pip-version-check --only-binary=:all: -d $(WHEELHOUSE) -r $(REQS)

# An attendee's setup with no network: the wheels come from WHEELHOUSE only. The stamp lets `make lab` start
# without reaching for requirements-dev.txt (the test tools are not in the wheelhouse).
setup-offline:
	$(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)
	$(BIN)/pip install --disable-pip-version-check --no-index --find-links $(WHEELHOUSE) -r $(REQS)
	touch $(VENV)/.installed

lint: setup
	$(BIN)/ruff check utils tests benchmarks solutions publish scaling

test: setup browser
	$(BIN)/ruff check utils tests benchmarks solutions publish scaling
	COURSE_PROFILE=smoke COURSE_OFFLINE=$${COURSE_OFFLINE-1} MPLBACKEND=agg \
		$(BIN)/python -m pytest -n 2

clean:
	rm -rf $(VENV) runs _build
