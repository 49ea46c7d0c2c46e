# The two commands a newcomer needs: `make run` and `make test`. See README.md.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export DJANGO_DEV ?= 1
export DO_NOT_TRACK := 1
export XDG_RUNTIME_DIR ?= $(CURDIR)/.local/run

.PHONY: run stop status test lint install requirements e2e-deps clean

# Re-install only when requirements.txt changes; a second `make run` skips straight to the services.
$(STAMP): requirements.txt
	@command -v python3 >/dev/null || { echo "python3 (3.11+) is required"; exit 1; }
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	@touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	@$(PY) -m devtools run

stop:
	@test -x $(PY) && $(PY) -m devtools stop || true

status: $(STAMP)
	@$(PY) -m devtools status

test: $(STAMP)
	@$(PY) -m devtools test $(ARGS)

lint: $(STAMP)
	@$(PY) -m devtools lint

# Regenerate the pinned requirements.txt from requirements.in.
requirements: $(STAMP)
	$(VENV)/bin/pip-compile --quiet --strip-extras --no-emit-index-url --output-file requirements.txt requirements.in

clean: stop
	rm -rf .local $(VENV)
