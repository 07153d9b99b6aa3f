# The two commands a newcomer needs: `make demo` and `make test`. Both set up .venv first.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
# transformers >= 5.3 (native Higgs Audio v2) for the oracle tests and for checking exports. It needs
# huggingface-hub >= 1.31 and tokenizers >= 0.23.1, which boson's transformers 4.46.3 forbids, so it
# lives in its own folder that only a subprocess puts on sys.path (higgs_lora/native/runtime.py).
# --no-deps with the full list: no second torch, numpy, safetensors, ... (the venv's serve it).
NATIVE := $(VENV)/native-transformers
NATIVE_STAMP := $(NATIVE)/.installed
NATIVE_PKGS := transformers==5.23.0 huggingface-hub==1.31.0 tokenizers==0.23.1 httpx==0.28.1 httpcore==1.0.9 \
	h11==0.16.0 anyio==4.16.0 click==8.5.1

.PHONY: setup demo test clean-demo

setup: $(STAMP) $(NATIVE_STAMP)

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

# Its own stamp, so an existing .venv gets the folder without reinstalling the rest.
$(NATIVE_STAMP): Makefile | $(STAMP)
	rm -rf $(NATIVE)
	$(PY) -m pip install -q --no-deps --target $(NATIVE) $(NATIVE_PKGS)
	touch $(NATIVE_STAMP)

# The whole pipeline offline on the tiny model: data -> validate -> train -> merge -> infer -> check-alignment.
demo: $(STAMP) $(NATIVE_STAMP)
	bash scripts/demo.sh

test: $(STAMP) $(NATIVE_STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(PY) -m pytest -q tests

clean-demo:
	rm -rf demo_output
