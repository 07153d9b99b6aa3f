"""Folder checks before anything loads: the format boson_multimodal reads, and every file loading needs.

A folder in transformers' native format (Boson's hub `main` since 2026-04) is refused, or with
`native_ok` converted once into boson's layout next to it (native/imports.py, native/codec.py).
"""

from __future__ import annotations

import json
from pathlib import Path

from ..defaults import MODEL_REPO, TOKENIZER_REPO
from .refs import DOWNLOAD_HINT, SEMANTIC_TEACHER_DIR, WeightsError, parse_ref, pinned


def read_config(folder: Path) -> dict:
    """config.json of `folder`; {} when missing or unreadable."""
    try:
        return json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return {}


def is_native(config: dict) -> bool:
    """The config is transformers' native Higgs Audio v2 (flattened, 2026-04), not boson's nested one."""
    model_type = config.get("model_type")
    return model_type == "higgs_audio_v2" or (model_type == "higgs_audio" and "text_config" not in config)


def check_model_folder(folder: Path, name: str | None = None, native_ok: bool = False) -> Path:
    """Refuse folders boson_multimodal cannot load, with the reason and the fix, before loading anything.

    `native_ok`: a native-format folder is converted (once) and the converted folder returned instead."""
    where = name or str(folder)
    config_path = folder / "config.json"
    if not config_path.is_file():
        raise WeightsError(
            f"{where}: no config.json, so not a model folder (pass a model folder, a hub id or `tiny`; {DOWNLOAD_HINT})"
        )
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise WeightsError(f"{where}: config.json cannot be read ({err})") from None
    model_type = config.get("model_type")
    if native_ok and is_native(config):
        from ..native.imports import to_boson_folder

        try:
            return to_boson_folder(folder, where)
        except (KeyError, ValueError, OSError) as err:
            reason = err.args[0] if isinstance(err, KeyError) and err.args else err
            raise WeightsError(
                f"{where} looks like the transformers-native Higgs Audio v2 format (model_type {model_type!r}) but cannot "
                f"be converted to boson_multimodal's layout ({reason}); pass a complete native folder, or use "
                f"{pinned(MODEL_REPO)} (the default) - {DOWNLOAD_HINT}"
            ) from None
    if is_native(config):
        raise WeightsError(
            f"{where} holds the transformers-native Higgs Audio v2 format (model_type {model_type!r}, flattened config: "
            f"Boson's 2026-04 rewrite), which boson_multimodal 0.1.1 cannot read; use {pinned(MODEL_REPO)} "
            f"(the default) - {DOWNLOAD_HINT}"
        )
    if model_type != "higgs_audio":
        raise WeightsError(
            f"{where}: config.json says model_type {model_type!r}, not a Higgs Audio model ('higgs_audio')"
        )
    return folder


TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json", "tiktoken.model")


def missing_model_files(folder: Path, weights: bool = True) -> list[str]:
    """What a partly copied model folder lacks: the tokenizer (without tokenizer_config.json transformers
    falls back on the model's config class and fails with a KeyError), and each weight shard the
    index lists (or any weight file at all)."""
    missing = []
    if not (folder / "tokenizer_config.json").is_file():
        missing.append("tokenizer_config.json")
    if not any((folder / name).is_file() for name in TOKENIZER_FILES) and not any(folder.glob("*.tiktoken")):
        missing.append("tokenizer.json (or another tokenizer vocabulary file)")
    if weights:
        index = folder / "model.safetensors.index.json"
        if index.is_file():
            try:
                shards = sorted(set(json.loads(index.read_text(encoding="utf-8"))["weight_map"].values()))
            except (OSError, ValueError, KeyError, AttributeError) as err:
                missing.append(f"a readable model.safetensors.index.json ({type(err).__name__})")
                shards = []
            missing += [shard for shard in shards if not (folder / shard).is_file()]
        elif not any(folder.glob("*.safetensors")) and not any(folder.glob("*.bin")):
            missing.append("the weights (model.safetensors, or shards and their index)")
    return missing


def check_model_complete(name: str, weights: bool = True) -> None:
    """A local model folder holds every file loading needs; one line naming what is missing.
    Hub ids and `tiny` are fetched or made whole, so there is nothing to check before loading."""
    if name == "tiny" or parse_ref(name) is not None:
        return
    folder = Path(name).expanduser()
    if (folder / "config.json").is_file() and is_native(read_config(folder)):
        return  # converted on load (native.imports), which checks what it reads
    folder = check_model_folder(folder, name)
    missing = missing_model_files(folder, weights)
    if missing:
        shown = ", ".join(missing[:6]) + (f" and {len(missing) - 6} more" if len(missing) > 6 else "")
        raise WeightsError(
            f"{name}: incomplete model folder, missing {shown} (a partial copy? copy the whole "
            f"folder again; {DOWNLOAD_HINT})"
        )


def check_codec_folder(folder: Path, name: str | None = None, native_ok: bool = False) -> Path:
    """Refuse codec folders boson cannot load; `native_ok`: convert a native one (once) and return the copy."""
    where = name or str(folder)
    if (
        native_ok
        and not (folder / "model.pth").is_file()
        and read_config(folder).get("model_type") == "higgs_audio_v2_tokenizer"
    ):
        from ..native.codec import to_boson_codec_folder

        try:
            return to_boson_codec_folder(folder, where)
        except (KeyError, ValueError, OSError) as err:
            raise WeightsError(
                f"{where}: a transformers-native audio tokenizer that cannot be converted to "
                f"boson_multimodal's layout ({err}); use {pinned(TOKENIZER_REPO)} (the default)"
            ) from None
    if not (folder / "model.pth").is_file():
        if (folder / "model.safetensors").is_file():
            raise WeightsError(
                f"{where} holds the 2026-04 audio tokenizer format (model.safetensors, no model.pth), which "
                f"boson_multimodal 0.1.1 cannot read; use {pinned(TOKENIZER_REPO)} (the default) - {DOWNLOAD_HINT}"
            )
        raise WeightsError(f"{where}: no model.pth (not a Higgs Audio tokenizer folder; {DOWNLOAD_HINT})")
    if not (folder / "config.json").is_file():
        raise WeightsError(f"{where}: no config.json next to model.pth")
    teacher = folder / SEMANTIC_TEACHER_DIR
    if teacher.is_dir():  # staged for offline use: a partial copy would send the codec to the hub
        missing = [] if (teacher / "config.json").is_file() else ["config.json"]
        if not any(teacher.glob("*.safetensors")) and not any(teacher.glob("*.bin")):
            missing.append("its weights (*.safetensors or *.bin)")
        if missing:
            raise WeightsError(
                f"{where}: incomplete codec folder, {SEMANTIC_TEACHER_DIR}/ lacks {', '.join(missing)} "
                f"(copy the whole folder again; {DOWNLOAD_HINT})"
            )
    return folder
