# Two commands do everything on a fresh machine: `make demo` and `make test`.
# Both build (or reuse) the virtual environment in .venv first.
PYTHON ?= python3.11
VENV   := .venv
PY     := $(VENV)/bin/python
LOCK   := requirements/lock.txt
STAMP  := $(VENV)/.installed
DEMO_DIR ?= demo_out

.PHONY: venv demo test lock wheel clean

venv: $(STAMP)

# Re-installs only when the lock or setup.py changed. --no-deps: the lock is complete,
# and letting pip resolve again would backtrack for many minutes.
$(STAMP): $(LOCK) setup.py
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade "pip>=24"
	$(PY) -m pip install --quiet --no-deps -r $(LOCK)
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

demo: venv
	DEMO_DIR=$(DEMO_DIR) PYTHON=$(PY) bash scripts/demo.sh

test: venv
	$(PY) -m pytest -q tests

# Regenerate the lock with uv (a fast resolver); see BUILD.md.
lock:
	$(PYTHON) -m pip install --quiet uv
	$(PYTHON) -m uv pip compile requirements/requirements.in \
	  --python-version 3.11 --python-platform x86_64-unknown-linux-gnu -o $(LOCK)

wheel: venv
	$(PY) -m pip wheel --no-deps --no-build-isolation -w dist .

clean:
	rm -rf $(VENV) build dist *.egg-info $(DEMO_DIR)
