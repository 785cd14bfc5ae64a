# Two commands: `make run` and `make test`. Both set up .venv from pyproject.toml first.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test test-fast lint bench bench-pong bench-pong-seeds bench-music bench-music-torch install clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,mlflow,wandb,torch]'   # trackers and PyTorch: optional for users, tested here
	@touch $(STAMP)

install: $(STAMP)

## run: set up, then train CartPole on an embedded local Ray with every CPU until solved
run: $(STAMP)
	$(BIN)/labrun train configs/cartpole.yaml

## test: set up, then run the whole test suite
test: $(STAMP)
	$(BIN)/python -m pytest

## test-fast: set up, then the unit tests only (no Ray, no training through the CLI): the edit-test loop
test-fast: $(STAMP)
	$(BIN)/python -m pytest -m "not slow"

## lint: set up, then ruff (rules in pyproject.toml)
lint: $(STAMP)
	$(BIN)/ruff check rl supervised cluster benchmarks tests

## bench: set up, then run the benchmarks (tables on screen, JSON in benchmarks/results/)
bench: $(STAMP)
	$(BIN)/python -m benchmarks.run

## bench-pong: set up, then Pong learning under sticky actions to 20 M and 40 M frames, each evaluated over 20 unseen games (~35 minutes on 2 quiet CPUs; into pong.json)
bench-pong: $(STAMP)
	$(BIN)/python -m benchmarks.run pong-learning

## bench-pong-seeds: set up, then the Pong learning config and its variants with 3 seeds each (5 for two) to 20 M frames, evaluated like bench-pong (~12 hours; continues an interrupted run; into pong_seeds.json)
bench-pong-seeds: $(STAMP)
	$(BIN)/python -m benchmarks.run pong-seeds

## bench-music: set up, then the music LSTM's default budget and 100 sampled tunes (into supervised.json)
bench-music: $(STAMP)
	$(BIN)/python -m benchmarks.run music

## bench-music-torch: set up, then the PyTorch music LSTM's default budget, 100 sampled tunes, and both frameworks' speed per step (into supervised.json)
bench-music-torch: $(STAMP)
	$(BIN)/python -m benchmarks.run music-torch

clean:
	rm -rf $(VENV) runs .pytest_cache *.egg-info
