# Two commands do everything on a fresh machine: `make demo` and `make test`.
# Both build (or reuse) the virtual environment in .venv first.
SHELL := /bin/bash
.SHELLFLAGS := -o pipefail -ec
PYTHON ?= python3.11
VENV   := .venv
PY     := $(VENV)/bin/python
LOCK   := requirements/lock.txt
STAMP  := $(VENV)/.installed
DEMO_DIR ?= demo_out

.PHONY: venv install demo test lock wheel clean

# What the environment was installed from: the lock's and setup.py's contents (not their file
# times, which a fresh clone or a checkout renews) and this checkout's path (the project is
# installed editable, pointing here).
INSTALL_KEY := $(shell cat $(LOCK) setup.py | cksum | tr -s ' ' '-') $(CURDIR)

# Re-installs only when INSTALL_KEY changed. --no-deps: the lock is complete,
# and letting pip resolve again would backtrack for many minutes. --no-compile, then
# scripts/compile_imports.py byte-compiles the quarter of the installed modules the project
# imports (pip's own compile, or compileall, compiles all of them and took longer than the
# install).
venv:
	@if [ -x $(PY) ] && [ "$$(cat $(STAMP) 2>/dev/null)" = "$(INSTALL_KEY)" ]; then :; \
	else $(MAKE) --no-print-directory -f $(firstword $(MAKEFILE_LIST)) install; fi

# (The stamp goes first: an install that fails half-way is redone by the next run.)
install:
	rm -f $(STAMP)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade "pip>=24" 2>&1 | { grep -v "is ignored: it is neither" || true; }
	$(PY) -m pip install --quiet --no-compile --no-deps -r $(LOCK) 2>&1 | { grep -v "is ignored: it is neither" || true; }
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e . 2>&1 | { grep -v -E "is ignored: it is neither|BuildBackendWarning|!!|\*\*\*|Please be careful|name as your package|with strategy|^ *$$" || true; }
	$(PY) scripts/compile_imports.py
	echo "$(INSTALL_KEY)" > $(STAMP)

demo: venv
	DEMO_DIR=$(DEMO_DIR) PYTHON=$(PY) bash scripts/demo.sh

# Lint first (ruff, configured in pyproject.toml), then the suite.
test: venv
	$(PY) -m ruff check --quiet .
	$(PY) -m pytest -q -n 2 --dist loadfile --no-loadscope-reorder

# Regenerate the lock with uv (a fast resolver); see BUILD.md.
lock:
	test -x .venv-lock/bin/uv || { $(PYTHON) -m venv .venv-lock && .venv-lock/bin/pip install --quiet uv; }
	.venv-lock/bin/uv pip compile requirements/requirements.in \
	  --python-version 3.11 --python-platform x86_64-unknown-linux-gnu -o $(LOCK)

wheel: venv
	$(PY) -m pip wheel --no-deps --no-build-isolation -w dist .

clean:
	rm -rf $(VENV) build dist *.egg-info $(DEMO_DIR)
