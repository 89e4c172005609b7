# The user interface of the repository. `make help` lists every target.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export PROJECT_ROOT := $(CURDIR)
export MLFLOW_DISABLE_TELEMETRY := true
export HF_HUB_OFFLINE ?= 1
export TRANSFORMERS_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM := false

# The ML pipelines in smoke order: the one list, tools/registry.py (stdlib only: any python3).
PROJECTS := $(shell $(PYTHON) -m tools.registry)
SMOKE_IMAGE_OOF := data/oof/image_classifier_isic2024-smoke.csv

.PHONY: help setup smoke mutate serve demo demo-screenshots test test-slow test-browser browser-deps test-all lint format mlflow-ui clean clean-all report benchmarks scale-rehearsal gpu-bench \
	tabular-gbm-smoke tabular-gbm image-classifier-smoke image-classifier \
	retrieval-qa-smoke retrieval-qa captioning-smoke captioning stacking-smoke lock

help: ## List the targets
	@grep -hE '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | \
		awk 'BEGIN {FS = ":.*?## "}; {printf "  \033[36m%-24s\033[0m %s\n", $$1, $$2}'

# The lock is the one list of versions; uv installs it (parallel downloads: ~1 min instead of
# ~3.5 with pip on this machine) when it can be had from the index, else pip does. INSTALLER=pip
# forces pip. uv itself is pinned here: it is the installer, not a dependency. uv compiles the
# packages' bytecode at install, as pip does (+30 s): where PYTHONDONTWRITEBYTECODE is set, as
# on this machine, nothing else would, and every process compiled torch, Lightning, mlflow...
# from source (importing the four pipelines: 21.7 s instead of 9.4). A .venv made before
# this: `rm .venv/.installed && make setup` (or `.venv/bin/python -m compileall -q .venv/lib`).
UV_VERSION := 0.13.9
INSTALLER ?= uv
$(STAMP): pyproject.toml requirements.lock
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@if [ "$(INSTALLER)" = uv ] && $(PY) -m pip install -q --disable-pip-version-check "uv==$(UV_VERSION)" && \
		echo "installing requirements.lock with uv $(UV_VERSION)" && \
		$(VENV)/bin/uv pip install -q --compile-bytecode --python $(PY) -r requirements.lock && \
		$(VENV)/bin/uv pip install -q --python $(PY) --no-deps --no-build-isolation -e .; then :; \
	else \
		echo "installing requirements.lock with pip"; \
		$(PY) -m pip install -q --disable-pip-version-check -r requirements.lock && \
		$(PY) -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e .; \
	fi
	@touch $@

setup: $(STAMP) ## Create .venv and install the locked dependencies (does nothing when up to date)

lock: ## Re-resolve pyproject.toml into requirements.lock (needs the package index)
	$(PY) -m pip install -q -e '.[dev]'
	$(PY) -m pip freeze --all --exclude-editable | grep -vE '^(ml-portfolio|pip|uv)==' > requirements.lock

smoke: $(STAMP) ## Run every project's CPU smoke pipeline (one process: tools/smoke.py; ARGS="seed=43" goes to each), then the results table
	@$(PY) -m tools.smoke $(ARGS)
	@$(PY) -m tools.results --experiment smoke

report: $(STAMP) ## Write reports/portfolio.html (every champion, one file) and print the latest runs
	@$(PY) -m tools.results
	@$(PY) -m tools.portfolio

test: $(STAMP) shellcheck ## Run the test suite (everything but tests marked slow, server or browser)
	$(PY) -m pytest -m "not slow and not server and not browser" -q

test-slow: $(STAMP) ## Run only the tests marked slow (CI runs them after make test)
	$(PY) -m pytest -m "slow and not server and not browser" -q

browser-deps: ## Install Debian's chromium + chromium-driver when missing (needs root)
	@if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then exit 0; fi; \
	if [ "$$(id -u)" != 0 ]; then \
		echo "browser-deps: /usr/bin/chromium or /usr/bin/chromedriver is missing; run as root:" \
			"apt-get update && apt-get install -y chromium chromium-driver"; exit 1; fi; \
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver

test-browser: $(STAMP) browser-deps ## Browser tests: headless Chromium drives the demo (and report)
	$(PY) -m pytest -m browser -q

test-all: $(STAMP) ## Run every test, slow ones included
	$(PY) -m pytest -q

mutate: $(STAMP) ## Mutation testing (mutmut; slow, not in CI): mutate the science code, list survivors
	$(PY) -m mutmut run --max-children $(or $(JOBS),2) || true
	$(PY) benchmarks/mutation_report.py   # writes benchmarks/mutation-survivors.md

lint: $(STAMP) ## ruff check + format check
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

format: $(STAMP) ## Format and auto-fix with ruff
	$(PY) -m ruff format .
	$(PY) -m ruff check --fix .

mlflow-ui: $(STAMP) ## Serve the embedded MLflow store on 127.0.0.1
	@echo "MLflow UI: http://127.0.0.1:5000  (store: sqlite:///$(CURDIR)/mlflow.db)"
	$(VENV)/bin/mlflow ui --backend-store-uri sqlite:///$(CURDIR)/mlflow.db \
		--default-artifact-root $(CURDIR)/mlartifacts --host 127.0.0.1 --port 5000 --workers 1

serve: $(STAMP) ## Serve a registered model over REST: make serve MODEL=tabular_gbm-isic2024-smoke [PORT=5001]
	@test -n "$(MODEL)" || { echo "usage: make serve MODEL=<registered model> [PORT=5001]"; exit 2; }
	MLFLOW_TRACKING_URI="$${MLFLOW_TRACKING_URI:-sqlite:///$(CURDIR)/mlflow.db}" \
		$(PY) -m tools.serve --model "$(MODEL)" --host 127.0.0.1 --port $(or $(PORT),5001)

benchmarks: $(STAMP) ## Run every benchmark script at CPU sizes (prints figures); GPU: gpu-bench
	@for f in benchmarks/*.py; do \
		case $$f in */gpu.py|*_scale.py|*/mutation_report.py|*/_util.py|*/__init__.py) continue;; \
			*/image_classifier.py) a="--n 2000";; *) a="";; esac; \
		echo "=== $$f $$a"; $(PY) $$f $$a || exit 1; done

scale-rehearsal: $(STAMP) ## The data paths at the real data sets' sizes on this machine (issue 25; ~1.5 h, ~75 GB disk)
	$(PY) benchmarks/tabular_scale.py
	$(PY) benchmarks/image_classifier.py --mode full-eval --sizes real --n 50000 --workers 2
	$(PY) benchmarks/captioning_scale.py --decode
	$(PY) benchmarks/retrieval_scale.py --passages 1000000
	$(PY) benchmarks/retrieval_scale.py --passages 6000000

gpu-bench: $(STAMP) ## Torch projects' full-config training steps on a GPU: images/s, peak memory (ARGS=--cpu: tiny)
	PY=$(PY) bash benchmarks/gpu.sh $(ARGS)

demo: $(STAMP) ## Gradio demo of the four champions on http://127.0.0.1:7860 (ARGS="port=7870")
	$(PY) -m tools.demo.app $(ARGS)

demo-screenshots: $(STAMP) browser-deps ## Use each demo tab in headless Chromium -> docs/demo/<project>.png
	$(PY) -m tests.browser.demo_driver

clean: ## Remove generated data and outputs (keeps mlflow.db and its artifacts)
	rm -rf data/smoke data/cache outputs multirun lightning_logs .pytest_cache .ruff_cache
	find . -name __pycache__ -not -path './.venv/*' -prune -exec rm -rf {} +

clean-all: clean ## Also remove the MLflow store (mlflow.db, mlartifacts/)
	rm -rf mlflow.db mlartifacts

# Per-project targets: `make <project>-smoke` on CPU, `make <project> DATA=/path` on the real data.
tabular-gbm-smoke: $(STAMP) ## tabular_gbm on generated ISIC 2024-format data (CPU, <1 min)
	$(PY) -m projects.tabular_gbm.train experiment=smoke $(ARGS)
tabular-gbm: $(STAMP) ## tabular_gbm on the Kaggle data: make tabular-gbm DATA=/path/to/isic-2024-challenge
	$(PY) -m projects.tabular_gbm.train experiment=full $(if $(DATA),data.dir=$(DATA)) $(ARGS)
image-classifier-smoke: $(STAMP) ## image_classifier on generated lesion images (CPU, ~2.5 min)
	$(PY) -m projects.image_classifier.train experiment=smoke $(ARGS)
stacking-smoke: $(STAMP) ## tabular_gbm with image_classifier's smoke OOF scores as a feature
	$(PY) -m projects.tabular_gbm.train experiment=smoke tracking.run_name=smoke-stacked data.image_oof=$(SMOKE_IMAGE_OOF)
image-classifier: $(STAMP) ## image_classifier on the Kaggle data (GPU): DATA=/path
	$(PY) -m projects.image_classifier.train experiment=full $(if $(DATA),data.dir=$(DATA)) $(ARGS)
retrieval-qa-smoke: $(STAMP) ## retrieval_qa on a generated corpus + questions (CPU, ~1.5 min)
	$(PY) -m projects.retrieval_qa.train experiment=smoke $(ARGS)
retrieval-qa: $(STAMP) ## retrieval_qa on LLM Science Exam + a Wikipedia STEM corpus (GPU): DATA=/path
	$(PY) -m projects.retrieval_qa.train experiment=full $(if $(DATA),data.dir=$(DATA)) $(ARGS)
captioning-smoke: $(STAMP) ## captioning on rendered scenes (CPU, ~1.5 min)
	$(PY) -m projects.captioning.train experiment=smoke $(ARGS)
captioning: $(STAMP) ## captioning on a Karpathy split (GPU): DATA=/path
	$(PY) -m projects.captioning.train experiment=full $(if $(DATA),data.dir=$(DATA)) $(ARGS)

# --- shell (projects/shell) ---
.PHONY: shell
shell: $(STAMP) ## Start the Unix shell (fork/exec, pipes, job control): python -m projects.shell
	$(PY) -m projects.shell

# --- chat (projects/chat) ---
# A terminal chat on the OS's own interfaces (selectors, sqlite3, curses); see projects/chat/README.md.
.PHONY: chat-server chat-client chat-bot chat-faq-eval chat-bench
chat-server: $(STAMP) ## Chat server on 127.0.0.1:5050 (configs/chat/server.yaml; ARGS="port=6000")
	$(PY) -m projects.chat.server $(ARGS)
chat-client: $(STAMP) ## Curses chat client: make chat-client NAME=alice [ROOM=lobby]
	@test -n "$(NAME)" || { echo "usage: make chat-client NAME=yourname [ROOM=lobby]"; exit 2; }
	$(PY) -m projects.chat.tui --name $(NAME) $(if $(ROOM),--room $(ROOM)) $(ARGS)
chat-bot: $(STAMP) ## FAQ bot: joins the chat as user faqbot (configs/chat/bot.yaml)
	$(PY) -m projects.chat.faq_bot $(ARGS)
chat-faq-eval: $(STAMP) ## FAQ bot accuracy@1, precision/coverage at its threshold -> MLflow 'chat'
	$(PY) -m projects.chat.faq_eval $(ARGS)
chat-bench: $(STAMP) ## Chat throughput, p50/p99 latency: N clients x M messages over loopback
	$(PY) benchmarks/chat.py $(ARGS)

# --- tracking server, sweeps, reproduction ---
.PHONY: test-server infra-up infra-down sweep reproduce shellcheck lint-shell
COMPOSE := docker compose -f infra/docker-compose.yml
SHELL_SCRIPTS := $(wildcard infra/*.sh infra/aws/*.sh benchmarks/*.sh)
test-server: $(STAMP) ## MLflow server on a throwaway PostgreSQL (installs it when missing; CI runs it)
	$(PY) -m pytest -m server -q
infra-up: ## Start the team server (MLflow + PostgreSQL + MinIO) with docker compose
	$(COMPOSE) up -d
	@echo "export MLFLOW_TRACKING_URI=http://127.0.0.1:5000   # then any make target logs there"
infra-down: ## Stop the docker compose server (its volumes stay: docker compose ... down -v drops them)
	$(COMPOSE) down
sweep: $(STAMP) ## Optuna sweep: make sweep PROJECT=tabular_gbm TRIALS=20 [JOBS=2] [SPACE=default] [STORAGE=url] [ARGS=overrides]
	@test -n "$(PROJECT)" && test -n "$(TRIALS)" || { echo "usage: make sweep PROJECT=tabular_gbm TRIALS=20 [JOBS=2]"; exit 2; }
	$(PY) -m tools.sweep --project $(PROJECT) --trials $(TRIALS) --n-jobs $(or $(JOBS),1) \
		$(if $(SPACE),--space $(SPACE)) $(if $(STORAGE),--storage $(STORAGE)) $(ARGS)
reproduce: $(STAMP) ## Re-run a logged run at its commit and compare metrics: make reproduce RUN_ID=...
	@test -n "$(RUN_ID)" || { echo "usage: make reproduce RUN_ID=<mlflow run id>"; exit 2; }
	$(PY) -m tools.reproduce $(RUN_ID) $(ARGS)
shellcheck: ## Install Debian's shellcheck when missing (as root; make test runs it, CI too)
	@command -v shellcheck >/dev/null || [ "$$(id -u)" != 0 ] || \
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq shellcheck; } || \
		echo "shellcheck: apt-get could not install it; its test is skipped"
lint-shell: shellcheck ## shellcheck the infra and benchmark scripts (part of make lint)
	shellcheck $(SHELL_SCRIPTS)
lint: lint-shell
