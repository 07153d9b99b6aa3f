"""A model folder in transformers' native format (Boson's hub `main` since 2026-04, or our export) made
readable by boson_multimodal: converted once into a folder next to it, reused afterwards.

The conversion renames weights (native/weights.py) and rebuilds boson's nested config: from the
boson config an export of ours carries (`higgs_lora_export.json`), else from the native fields laid
over the released config's structure (native/config.py).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
from pathlib import Path

from . import config as native_config
from . import weights

log = logging.getLogger(__name__)

MARKER = "higgs_lora_import.json"
SUFFIX = ".boson"


def is_native_config(config: dict) -> bool:
    model_type = config.get("model_type")
    return model_type == "higgs_audio_v2" or (model_type == "higgs_audio" and "text_config" not in config)


def _fingerprint(folder: Path) -> dict:
    files = sorted(p for p in folder.iterdir() if p.is_file() and (p.suffix in (".safetensors", ".json")))
    return {p.name: [p.stat().st_size, int(p.stat().st_mtime)] for p in files}


def converted_folder(native: Path) -> Path:
    """Where the boson-format copy of `native` goes: next to it, or in the user cache when that is read-only."""
    native = native.resolve()
    beside = native.parent / (native.name + SUFFIX)
    if os.access(native.parent, os.W_OK):
        return beside
    from ..model.tiny import cache_root

    return cache_root() / "native-import" / (hashlib.sha256(str(native).encode()).hexdigest()[:16] + SUFFIX)


def to_boson_folder(native: Path, name: str | None = None) -> Path:
    """The boson-format folder for the native model folder `native` (converting it on first use)."""
    native = Path(native)
    target = converted_folder(native)
    fingerprint = _fingerprint(native)
    marker = target / MARKER
    if marker.is_file():
        try:
            if json.loads(marker.read_text(encoding="utf-8")).get("source_files") == fingerprint:
                return target
        except (OSError, json.JSONDecodeError):
            pass
    convert(native, target)
    (target / MARKER).write_text(
        json.dumps({"source": str(native.resolve()), "source_files": fingerprint}, indent=2), encoding="utf-8"
    )
    log.warning(
        "%s is in transformers' native Higgs Audio v2 format; converted it once to boson_multimodal's layout "
        "in %s (reused from now on)",
        name or native,
        target,
    )
    return target


def load_native_tokenizer(native: Path):
    """The tokenizer of a native folder through tokenizer.json only (its tokenizer_config.json is written by
    transformers 5, whose fields transformers 4.46 may not know)."""
    from transformers import PreTrainedTokenizerFast

    if not (native / "tokenizer.json").is_file():
        raise FileNotFoundError(f"{native}: no tokenizer.json")
    special = {}
    cfg_path = native / "tokenizer_config.json"
    if cfg_path.is_file():
        cfg = json.loads(cfg_path.read_text(encoding="utf-8"))
        for key in ("bos_token", "eos_token", "pad_token"):
            value = cfg.get(key)
            if isinstance(value, dict):
                value = value.get("content")
            if value:
                special[key] = value
    return PreTrainedTokenizerFast(
        tokenizer_file=str(native / "tokenizer.json"), clean_up_tokenization_spaces=False, **special
    )


def convert(native: Path, target: Path) -> None:
    from .tensors import read_folder, write_folder

    config = json.loads((native / "config.json").read_text(encoding="utf-8"))
    tokenizer = load_native_tokenizer(native)
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in ("<|AUDIO|>", "<|audio_eos|>")}
    record_path = native / "higgs_lora_export.json"
    record = json.loads(record_path.read_text(encoding="utf-8")) if record_path.is_file() else {}
    boson = record.get("boson_config") or native_config.to_boson(config, ids)
    state = read_folder(native)
    if "text_lm_head.weight" not in state:
        raise ValueError(
            f"{native}: no text_lm_head.weight; boson_multimodal needs the text head "
            f"(export native snapshots with it, as Boson's and `higgs-lora export` do)"
        )
    state = weights.rename(state, "boson")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=target.name + ".", dir=target.parent))
    try:
        dtype = next(str(v.dtype).replace("torch.", "") for v in state.values() if v.is_floating_point())
        boson["torch_dtype"] = dtype
        boson.setdefault("text_config", {})["torch_dtype"] = dtype
        (tmp / "config.json").write_text(json.dumps(boson, indent=2), encoding="utf-8")
        write_folder(tmp, state)
        tokenizer.save_pretrained(tmp)
        for extra in ("higgs_lora_run.json",):
            if (native / extra).is_file():
                shutil.copy(native / extra, tmp / extra)
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
