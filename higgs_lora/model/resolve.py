"""Names to local folders: `tiny` built, a folder checked, a hub id fetched at its revision then checked.

Only the files a stage needs are fetched (the model repositories also hold demo media); fetches are
cached per process (`fetch.cache_clear()` forgets them).
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

from .folder_checks import check_codec_folder, check_model_folder, is_native, read_config
from .refs import DOWNLOAD_HINT, SEMANTIC_TEACHER_DIR, SEMANTIC_TEACHER_REPO, HubRef, WeightsError, parse_ref

# Weights, configs and tokenizer files only: the model repositories also hold demo media.
MODEL_META_FILES = ("*.json", "*.txt", "*.model", "*.tiktoken")  # config and tokenizer, no weights
MODEL_FILES = MODEL_META_FILES + ("*.safetensors",)
CODEC_FILES = ("config.json", "model.pth")
NATIVE_CODEC_FILES = ("model.safetensors",)  # today's hub `main`: converted once (native/codec.py)
TEACHER_FILES = ("*.json", "*.safetensors", "*.bin", "*.txt")


@functools.lru_cache(maxsize=16)
def fetch(ref: HubRef, allow_patterns: tuple[str, ...], local_dir: str | None = None) -> Path:
    """The snapshot of `ref` (only files matching `allow_patterns`): from the local hub cache, or downloaded."""
    from huggingface_hub import snapshot_download

    try:
        folder = snapshot_download(
            repo_id=ref.repo, revision=ref.revision, allow_patterns=list(allow_patterns), local_dir=local_dir
        )
    except Exception as err:  # offline, unknown repo/revision, gated repo, network error
        raise WeightsError(
            f"cannot fetch {ref} from the hub ({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}); "
            f"pass a local folder instead ({DOWNLOAD_HINT} on a machine with network) or `tiny`"
        ) from None
    return Path(folder)


def model_folder(name: str, weights: bool = True) -> Path:
    """A local folder holding the model `name` (`tiny`, folder or hub id), checked to be in the readable format.

    `weights=False`: a hub id fetches only its config and tokenizer files (what needs no weights)."""
    if name == "tiny":
        from .tiny import ensure_tiny_model

        return ensure_tiny_model()
    ref = parse_ref(name)
    if ref is None:
        return check_model_folder(Path(name).expanduser(), name, native_ok=True)
    folder = fetch(ref, MODEL_FILES if weights else MODEL_META_FILES)
    if not weights and is_native(read_config(folder)):
        folder = fetch(ref, MODEL_FILES)  # converting needs the weights
    return check_model_folder(folder, str(ref), native_ok=True)


def codec_folder(name: str) -> Path:
    """A local folder holding the audio tokenizer `name` (folder or hub id) in boson's layout (model.pth); a
    native one (model.safetensors, model_type higgs_audio_v2_tokenizer) is converted once next to it."""
    ref = parse_ref(name)
    if ref is None:
        return check_codec_folder(Path(name).expanduser(), name, native_ok=True)
    return check_codec_folder(fetch(ref, CODEC_FILES + NATIVE_CODEC_FILES), str(ref), native_ok=True)


def model_config_path(name: str) -> Path:
    """config.json of the model `name`, format-checked, without fetching its weights (preflight)."""
    if name == "tiny":
        from .tiny import ensure_tiny_model

        return ensure_tiny_model() / "config.json"
    ref = parse_ref(name)
    folder = Path(name).expanduser() if ref is None else fetch(ref, ("config.json",))
    if is_native(read_config(folder)):
        return model_folder(name) / "config.json"  # converted (once), so the checks read boson's config
    return check_model_folder(folder, name if ref is None else str(ref)) / "config.json"


def check_codec_source(name: str) -> None:
    """The codec `name` is usable: a local folder with model.pth, or a hub id whose config can be fetched."""
    if name == "tiny":
        return
    ref = parse_ref(name)
    if ref is None:
        check_codec_folder(Path(name).expanduser(), name, native_ok=True)
    else:
        fetch(ref, ("config.json",))


def semantic_teacher_folder(codec_dir: Path) -> Path:
    """The HuBERT the codec's constructor needs: staged next to the codec, named by env, or from the hub."""
    staged = codec_dir / SEMANTIC_TEACHER_DIR
    if (staged / "config.json").is_file():
        return staged
    name = os.environ.get("HIGGS_LORA_SEMANTIC_TEACHER", SEMANTIC_TEACHER_REPO)
    ref = parse_ref(name)
    return Path(name).expanduser() if ref is None else fetch(ref, TEACHER_FILES)
