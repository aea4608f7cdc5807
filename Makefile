# kaggle-digits: every target builds .venv on first use, so a fresh clone needs only `make demo` / `make test`.
.DEFAULT_GOAL := help
SHELL := /bin/bash

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
CLI := $(BIN)/kaggle-digits

# Options (make VAR=value): see `make help` and README.md.
# Unset options are not passed: the command's own defaults apply (written once, in kaggle_digits/config.py:
# MODEL cnn, TASK digit-recognizer, SEED 42; `kaggle-digits <command> --help` shows them).
MODEL ?=
TASK ?=
SEED ?=
DATA_DIR ?=
DATA ?=
COMPETITION ?=
MESSAGE ?=
UPLOAD ?= 1
FORCE ?= 0
ARGS ?=
REMOTE ?=
ACCELERATOR ?=

# Which of these options each target takes, and so passes on: the recipes below pass `$(call options,<target>)`,
# built from this table alone, so a target cannot take an option it does not pass. One given on the command line
# to a target that does not take it is refused, in one line, before anything runs (the check is at the end of
# this file). tests/test_make.py derives the table from the CLI's own argparse and checks that it agrees.
# ARGS comes last: its words follow the options.
OPTIONS := MODEL TASK SEED DATA_DIR DATA COMPETITION MESSAGE UPLOAD FORCE ARGS REMOTE ACCELERATOR
takes_data := TASK COMPETITION FORCE ARGS
takes_validate := TASK MODEL SEED DATA_DIR ARGS
takes_train := TASK MODEL SEED DATA_DIR ARGS
takes_predict := TASK MODEL SEED DATA_DIR ARGS
takes_evaluate := TASK MODEL SEED DATA_DIR ARGS
takes_submit := TASK MODEL SEED DATA_DIR COMPETITION MESSAGE UPLOAD FORCE REMOTE ACCELERATOR ARGS
takes_status := TASK COMPETITION ARGS
takes_leaderboard := TASK COMPETITION ARGS
takes_resubmit := TASK MODEL SEED COMPETITION MESSAGE ARGS
takes_serve-local := ARGS
takes_tasks := ARGS
takes_bench := TASK SEED DATA ARGS
takes_gpu-check := TASK SEED DATA ARGS
takes_tune := TASK MODEL SEED DATA_DIR REMOTE ACCELERATOR ARGS
takes_sample := DATA SEED ARGS
takes_demo := REMOTE ACCELERATOR ARGS
takes_test := ARGS
takes_test-fast := ARGS
takes_test-kaggle-image := ARGS
takes_check := ARGS
takes_lint :=
takes_typecheck :=
takes_install :=
takes_clean :=
takes_help :=

# Every variable reaches the CLI through the environment (KD_<NAME>, quoted in the recipe), never through
# the shell's parser nor make's own expansion ($(value ...)): a MESSAGE with backticks or $(...) is text.
$(foreach name,$(OPTIONS),$(eval export KD_$(name) = $$(value $(name))))
given = $(strip $(value $(1)))
arg = $(if $(call given,$(1)),$(2) "$$KD_$(1)")
# What each variable becomes on the command line; the CLI (argparse) owns the defaults.
pass_MODEL = $(call arg,MODEL,--model)
pass_TASK = $(call arg,TASK,--task)
pass_SEED = $(call arg,SEED,--seed)
pass_DATA_DIR = $(call arg,DATA_DIR,--data-dir)
pass_DATA = $(call arg,DATA,--data)
pass_COMPETITION = $(call arg,COMPETITION,--competition)
pass_MESSAGE = $(call arg,MESSAGE,--message)
pass_UPLOAD = $(if $(filter 0 no false,$(value UPLOAD)),--no-upload)
pass_FORCE = $(if $(filter 1 yes true,$(value FORCE)),--force)
pass_REMOTE = $(call arg,REMOTE,--remote)
pass_ACCELERATOR = $(call arg,ACCELERATOR,--remote-accelerator)
pass_ARGS = $(if $(call given,ARGS),$$KD_ARGS)# split into words on purpose (ARGS="-p epochs=20 -q"), never run
options = $(strip $(foreach option,$(takes_$(1)),$(pass_$(option))))

.PHONY: help
help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[36m%-12s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)
	@echo "  options: MODEL=cnn TASK=digit-recognizer SEED=42 DATA_DIR= DATA= COMPETITION= MESSAGE= UPLOAD=1 FORCE=0 REMOTE= ACCELERATOR= ARGS="

$(VENV)/.installed: pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,tune]'
	@touch $@

.PHONY: install
install: $(VENV)/.installed ## create .venv and install the package with its dependencies

.PHONY: demo
demo: $(VENV)/.installed ## the whole `make submit` flow offline, against the local Kaggle server, on the embedded sample
	$(CLI) demo $(call options,demo)

.PHONY: test
test: $(VENV)/.installed ## run the whole test suite
	$(BIN)/python -m pytest $(call options,test)

.PHONY: test-fast
test-fast: $(VENV)/.installed ## the tests that train no Keras model and run no whole flow in subprocesses (under a minute)
	$(BIN)/python -m pytest -m "not slow" $(call options,test-fast)

# The Kaggle image's package versions (tests/kaggle-image-requirements.txt, with their sources), in a venv of
# their own, on the image's Python (3.12) where this machine has it: the kernels `--remote kaggle` pushes run there.
KAGGLE_IMAGE_VENV := .venv-kaggle-image
KAGGLE_IMAGE_REQUIREMENTS := tests/kaggle-image-requirements.txt
KAGGLE_IMAGE_PYTHON ?= $(or $(shell for candidate in python3.12 $(wildcard $(HOME)/.pyenv/versions/3.12*/bin/python3.12); do \
  $$candidate -c 'import venv' >/dev/null 2>&1 && { echo $$candidate; break; }; done),$(PYTHON))

$(KAGGLE_IMAGE_VENV)/.installed: $(KAGGLE_IMAGE_REQUIREMENTS)
	@test -x $(KAGGLE_IMAGE_VENV)/bin/python || $(KAGGLE_IMAGE_PYTHON) -m venv $(KAGGLE_IMAGE_VENV)
	$(KAGGLE_IMAGE_VENV)/bin/python -m pip install --quiet -r $(KAGGLE_IMAGE_REQUIREMENTS)
	@touch $@

.PHONY: test-kaggle-image
test-kaggle-image: $(VENV)/.installed $(KAGGLE_IMAGE_VENV)/.installed ## the pushed kernels (cnn, ensemble members, softmax, every remote test) run on the Kaggle image's versions
	@# pyproject's lower bounds admit the image's versions: resolving the package beside them installs nothing else.
	$(KAGGLE_IMAGE_VENV)/bin/python -m pip install --dry-run --quiet . -r $(KAGGLE_IMAGE_REQUIREMENTS) --report - 2>/dev/null \
	  | $(BIN)/python -c "import json, sys; extra = sorted(i['metadata']['name'] for i in json.load(sys.stdin)['install']); \
	    sys.exit(0 if extra == ['kaggle-digits'] else 'pyproject does not admit the image versions: would install ' + ', '.join(extra))"
	KAGGLE_DIGITS_KERNEL_PYTHON="$(CURDIR)/$(KAGGLE_IMAGE_VENV)/bin/python" $(BIN)/python -m pytest tests/test_kaggle_image.py tests/test_remote.py $(call options,test-kaggle-image)

.PHONY: lint
lint: $(VENV)/.installed ## ruff: lint and format check (ruff format fixes the format)
	$(BIN)/ruff check kaggle_digits tests
	$(BIN)/ruff format --check kaggle_digits tests

.PHONY: typecheck
typecheck: $(VENV)/.installed ## mypy over the package
	$(BIN)/mypy

.PHONY: check
check: lint typecheck test ## lint + typecheck + the whole test suite: what CI runs

.PHONY: data
data: $(VENV)/.installed ## download and check the competition data into data/raw/ (FORCE=1 downloads again)
	$(CLI) fetch $(call options,data)

.PHONY: validate
validate: $(VENV)/.installed ## holdout accuracy, confusion matrix and plots for MODEL
	$(CLI) validate $(call options,validate)

.PHONY: train
train: $(VENV)/.installed ## fit MODEL on the full train.csv and save it
	$(CLI) train $(call options,train)

.PHONY: predict
predict: $(VENV)/.installed ## write submissions/<UTC time>-<model>.csv with the trained MODEL
	$(CLI) predict $(call options,predict)

.PHONY: evaluate
evaluate: $(VENV)/.installed ## train on the train file and score the labeled test file (TASK=fashion-mnist)
	$(CLI) evaluate $(call options,evaluate)

.PHONY: submit
submit: $(VENV)/.installed ## fetch, train once (with its accuracy estimate), predict, upload and wait for the score (UPLOAD=0: stop at the file)
	$(CLI) submit $(call options,submit)

.PHONY: status
status: $(VENV)/.installed ## the ledger next to Kaggle's submission list
	$(CLI) status $(call options,status)

.PHONY: leaderboard
leaderboard: $(VENV)/.installed ## your team on the public leaderboard: rank, rank among honest scores, a picture (ARGS="--json --threshold 0.999")
	$(CLI) leaderboard $(call options,leaderboard)

.PHONY: resubmit
resubmit: $(VENV)/.installed ## the scheduled run for cron: lock, fetch if changed, train, submit unless nothing to do
	$(CLI) run $(call options,resubmit)

.PHONY: serve-local
serve-local: $(VENV)/.installed ## run the Kaggle-compatible server on 127.0.0.1:7777 (embedded sample)
	$(CLI) serve-local $(call options,serve-local)

.PHONY: tasks
tasks: $(VENV)/.installed ## list the Kaggle tasks the toolkit knows
	$(CLI) tasks $(call options,tasks)

.PHONY: bench
bench: $(VENV)/.installed ## out-of-fold benchmark: presets and the published peer beside softmax (DATA=zip or folder; ARGS=--quick)
	$(CLI) bench $(call options,bench)

.PHONY: gpu-check
gpu-check: $(VENV)/.installed ## on a GPU machine: the cnn and ensemble GPU presets measured within 8 minutes (ARGS=--dry-run: on a CPU, tiny)
	$(CLI) bench --gpu-check $(call options,gpu-check)

.PHONY: tune
tune: $(VENV)/.installed ## search MODEL's parameters with Optuna; trials shared through the study's storage (ARGS="--trials 20 --jobs 2", --storage postgresql://...)
	$(CLI) tune $(call options,tune)

.PHONY: sample
sample: $(VENV)/.installed ## redraw the embedded sample (kaggle_digits/sample/) from a full download (DATA=zip or folder; default: the shared copy in ../shared/data/)
	$(CLI) sample $(call options,sample)

.PHONY: clean
clean: ## remove the cache, models and reports (keeps .venv, data/raw and submissions/: the guards read them)
	rm -rf data/cache data/models data/reports

# The option check (see OPTIONS above): `make resubmit DATA_DIR=x` stops here with one line, exit 2.
$(foreach goal,$(MAKECMDGOALS),$(if $(filter-out undefined,$(origin takes_$(goal))),$(foreach option,$(OPTIONS),\
  $(if $(and $(filter command line,$(origin $(option))),$(if $(filter $(option),$(takes_$(goal))),,refused)),\
    $(error make $(goal) does not take $(option)=; it takes: $(or $(takes_$(goal)),no options). See "Make variables" in docs/reference.md)))))
