# Two commands for a new user: `make demo` and `make test`.
# Both create or refresh .venv idempotently; a second run only re-checks stamps.
# llama-cpp-python compiles from source here (~10 min on 2 cores), so its wheel
# is built once, portably (no CPU-specific flags), into a cache outside the
# clone whose folder names the version and the flavour, and reused by every
# clone. Setup ends with a smoke generation from each built-in model.

PYTHON      ?= python3
VENV        ?= .venv
BIN         := $(VENV)/bin
WHEEL_CACHE ?= $(HOME)/.cache/gridllm_nb/wheels
LLAMA_CPP   ?= 0.3.36
STAMP       := $(VENV)/.gridllm-installed
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: demo test setup browser bench clean docs screenshots

setup: $(STAMP)

$(STAMP): pyproject.toml Makefile scripts/llama-wheel.sh
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install -q --upgrade pip
	@wheel="$$(WHEEL_CACHE="$(WHEEL_CACHE)" LLAMA_CPP="$(LLAMA_CPP)" PYTHON="$(BIN)/python" scripts/llama-wheel.sh)" \
	  && $(BIN)/python -m pip install -q --force-reinstall --no-deps "$$wheel" \
	  && $(BIN)/python -m pip install -q --find-links "$$(dirname "$$wheel")" -e ".[dev]"
	@$(BIN)/python -m gridllm_nb.service.smoke
	@touch $@

# Debian's chromium for the browser tests (never a browser download).
browser:
	@test -x /usr/bin/chromium || { \
	  echo "installing Debian's chromium for the browser tests"; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
	  || echo "warning: could not install chromium; browser tests will be skipped"; }

test: setup browser
	$(BIN)/lint-imports
	$(BIN)/python -m sphinx -b html -W --keep-going -n -q -d docs/_build/doctrees docs docs/_build/html
	$(BIN)/python -m pytest tests -p no:cacheprovider
	$(BIN)/python -m pytest --nbval notebooks --nbval-sanitize-with notebooks/sanitize.cfg -p no:cacheprovider

demo: setup
	@$(BIN)/python scripts/demo.py

# The documentation site: docs/_build/html/index.html (make test builds it with warnings as errors).
docs: setup
	@$(BIN)/python -m sphinx -b html -q -d docs/_build/doctrees docs docs/_build/html
	@echo "docs/_build/html/index.html"

# Every picture in the README and the docs, from the built-in models answering for real.
screenshots: setup browser
	$(BIN)/python scripts/screenshots.py

bench: setup
	$(BIN)/python benchmarks/poller.py
	$(BIN)/python benchmarks/grid.py
	$(BIN)/python benchmarks/service.py
	$(BIN)/python benchmarks/magic.py
	$(BIN)/python benchmarks/panel.py
	$(BIN)/python benchmarks/runtime.py
	$(BIN)/python benchmarks/fanout.py

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
