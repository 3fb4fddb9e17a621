# The two commands of the README. Each builds its own virtual environment on first use.
# torch is installed on its own first: the pinned CPU build is what this machine (and CI) has,
# and installing it before anything that depends on torch stops pip from pulling CUDA wheels.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
TORCH ?= torch==2.13.0

.PHONY: demo test test-fast install browser clean

$(VENV)/.installed: pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet $(TORCH)
	$(PY) -m pip install --quiet -e '.[test,ray,openai,accelerate,lora,tensorboard]'
	touch $@

install: $(VENV)/.installed

demo: $(VENV)/.installed
	$(VENV)/bin/prmkit demo

# headless Chromium for the report's browser test (Debian's package); where it cannot be
# installed (no root, no apt), that one test skips and says why
browser:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || \
	  { (apt-get update -qq && apt-get install -y -qq --no-install-recommends chromium) \
	    >/dev/null 2>&1 || echo "chromium could not be installed: the browser test will skip"; }

test: $(VENV)/.installed browser
	$(PY) -m pytest -q

# everything but the tests marked slow (the quick demo, training runs, kills, Ray): seconds
test-fast: $(VENV)/.installed
	$(PY) -m pytest -q -m "not slow"

clean:
	rm -rf $(VENV) .pytest_cache runs
