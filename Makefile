# The two commands a newcomer needs: `make demo` and `make test`. Both set up .venv first.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: setup demo test clean-demo

setup: $(STAMP)

$(STAMP): pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch first and pinned, so no later requirement can pull a multi-GB CUDA build in its place.
	$(PY) -m pip install -q torch==2.13.0
	# [hf]: pyarrow, which `convert` needs for Hugging Face datasets and its tests for their parquet shards.
	$(PY) -m pip install -q -e ".[test,eval,hf]"
	# Speaker similarity (higgs-lora eval): resemblyzer's declared deps are webrtcvad (imports
	# pkg_resources, gone from setuptools >= 81) and `typing` (a Python 2 backport); its real needs
	# (librosa, numpy, scipy<2, torch, webrtcvad-wheels) come from the [eval] extra above.
	$(PY) -m pip install -q --no-deps resemblyzer==0.1.4
	# The published wheel declares boto3, ruff, torchaudio, descript-audio-codec, ... that training
	# and inference never import; its real needs are declared in pyproject.toml instead.
	$(PY) -m pip install -q --no-deps boson-multimodal==0.1.1
	touch $(STAMP)

# The whole pipeline offline on the tiny model: data -> validate -> train -> merge -> infer -> check-alignment.
demo: $(STAMP)
	bash scripts/demo.sh

test: $(STAMP)
	$(PY) -m pytest -q tests

clean-demo:
	rm -rf demo_output
