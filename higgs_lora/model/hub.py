"""Where weights come from: `tiny`, a local folder, or a hub repository pinned to a revision.

Boson rewrote its hub repositories in place on 2026-04-04 for transformers' native Higgs Audio v2
(flattened config, `model_type: higgs_audio_v2`, renamed weights; the tokenizer moved from
`model.pth` to `model.safetensors`). boson_multimodal 0.1.1 reads neither, so every hub access here
names a revision, and the defaults are the last revisions in the format it reads. A name is:

- `tiny`                       the offline random-weight kit (tests, demo);
- a local folder               e.g. staged by `higgs-lora download` for clusters without network;
- `owner/repo@REVISION`        a hub repository at a commit, branch or tag;
- `owner/repo`                 the same at `main` (with a warning for Boson's rewritten repositories).

Folders and snapshots are checked before anything loads them. A model folder in the new (native)
format is converted once into boson_multimodal's layout, in a folder next to it (native/imports.py),
with a line saying so; the pinned revisions stay the default.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path

from ..defaults import MODEL_REPO, MODEL_REVISION, TOKENIZER_REPO, TOKENIZER_REVISION

log = logging.getLogger(__name__)

# The codec's constructor loads this HuBERT by name. No verified commit of it is known to this project,
# so it follows `main` unless HIGGS_LORA_SEMANTIC_TEACHER names `repo@revision` or a folder; a codec
# folder staged by `higgs-lora download` carries its own copy in `semantic_teacher/`.
SEMANTIC_TEACHER_REPO = "bosonai/hubert_base"
SEMANTIC_TEACHER_DIR = "semantic_teacher"

PINNED = {MODEL_REPO: MODEL_REVISION, TOKENIZER_REPO: TOKENIZER_REVISION}

# Weights, configs and tokenizer files only: the model repositories also hold demo media.
MODEL_META_FILES = ("*.json", "*.txt", "*.model", "*.tiktoken")  # config and tokenizer, no weights
MODEL_FILES = MODEL_META_FILES + ("*.safetensors",)
CODEC_FILES = ("config.json", "model.pth")
NATIVE_CODEC_FILES = ("model.safetensors",)  # today's hub `main`: converted once (native/codec.py)
TEACHER_FILES = ("*.json", "*.safetensors", "*.bin", "*.txt")

DOWNLOAD_HINT = "`higgs-lora download --output_dir weights` stages the pinned model and codec as local folders"
_REPO_ID = re.compile(r"^[\w.-]+/[\w.-]+$")


class WeightsError(ValueError):
    """Weights that cannot be used as named: wrong format, missing files, or hub out of reach."""


@dataclass(frozen=True)
class HubRef:
    repo: str
    revision: str

    def __str__(self) -> str:
        return f"{self.repo}@{self.revision}"


def parse_ref(name: str) -> HubRef | None:
    """`owner/repo[@revision]` -> HubRef; None for `tiny` and for existing local folders."""
    if name == "tiny" or Path(name).expanduser().exists():
        return None
    repo, sep, revision = name.partition("@")
    # Only the repo part counts slashes: a revision may hold some (`refs/pr/1`, a `release/v1` branch).
    if name.startswith(("/", ".", "~")) or repo.count("/") > 1:
        raise WeightsError(
            f"{name}: no such folder (expected a model folder, a hub id owner/repo[@revision] or `tiny`)"
        )
    if not _REPO_ID.match(repo) or (sep and not revision):
        raise WeightsError(f"{name!r} is neither a folder, `tiny`, nor a hub id (owner/repo or owner/repo@revision)")
    if not sep:
        revision = "main"
        if repo in PINNED:
            log.warning(
                "%s without a revision means its newest files (main), which boson_multimodal 0.1.1 cannot "
                "read since Boson's 2026-04 rewrite; the default %s@%s works",
                repo,
                repo,
                PINNED[repo],
            )
    return HubRef(repo, revision)


def pinned(repo: str) -> str:
    return f"{repo}@{PINNED[repo]}"


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


def _is_native(config: dict) -> bool:
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
    if native_ok and _is_native(config):
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
    if _is_native(config):
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
    if (folder / "config.json").is_file() and _is_native(_read_config(folder)):
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
        and _read_config(folder).get("model_type") == "higgs_audio_v2_tokenizer"
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
    if not weights and _is_native(_read_config(folder)):
        folder = fetch(ref, MODEL_FILES)  # converting needs the weights
    return check_model_folder(folder, str(ref), native_ok=True)


def _read_config(folder: Path) -> dict:
    try:
        return json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return {}


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
    if _is_native(_read_config(folder)):
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


# --- provenance ------------------------------------------------------------------------------------

WEIGHT_SUFFIXES = (".safetensors", ".pth", ".bin")


_SHA256 = re.compile(r"[0-9a-f]{64}")


def _staged_sha256(path: Path) -> str | None:
    """The sha256 huggingface_hub recorded when it downloaded `path` into a folder (`higgs-lora download`
    uses `local_dir`): its metadata file holds the commit, the etag (an LFS file's sha256) and the time of
    download. Read-only; ignored once the file is newer than that record (edited or copied since)."""
    meta = path.parent / ".cache" / "huggingface" / "download" / f"{path.name}.metadata"
    try:
        _commit, etag, timestamp = meta.read_text(encoding="utf-8").splitlines()[:3]
        if _SHA256.fullmatch(etag.strip()) and path.stat().st_mtime - 1 <= float(timestamp):
            return etag.strip()
    except (OSError, ValueError):
        pass
    return None


def _sha256(path: Path) -> str:
    # A hub cache file is a link to a blob named by its sha256 (LFS files), and a staged folder keeps
    # huggingface_hub's record of it: no need to read 12 GB.
    target = path.resolve()
    if _SHA256.fullmatch(target.name):
        return target.name
    staged = _staged_sha256(path)
    if staged:
        return staged
    digest = hashlib.sha256()
    with open(target, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 24), b""):
            digest.update(chunk)
    return digest.hexdigest()


def weight_hashes(folder: Path) -> dict[str, str]:
    """sha256 of every weight file in `folder` (top level), by file name."""
    return {p.name: _sha256(p) for p in sorted(folder.iterdir()) if p.is_file() and p.suffix in WEIGHT_SUFFIXES}


def provenance(name: str, kind: str = "model") -> dict:
    """What `name` resolved to: repo and revision (for hub ids), the folder, and its weight-file hashes."""
    if name == "tiny" and kind == "codec":
        return {"name": name}
    ref = parse_ref(name)
    folder = model_folder(name) if kind == "model" else codec_folder(name)
    record = {"name": name, "folder": str(folder), "weights_sha256": weight_hashes(folder)}
    if ref is not None:
        record.update(repo=ref.repo, revision=ref.revision)
    return record


def warn_if_other_base(run_config: dict, model_name: str, what: str) -> bool:
    """Warn when an adapter is about to be served on base weights other than those it was trained on."""
    trained = (run_config.get("provenance") or {}).get("base_model") or {}
    expected = trained.get("weights_sha256")
    if not expected:
        return False
    current = provenance(model_name)["weights_sha256"]
    if current == expected:
        return False
    log.warning(
        "%s: the adapter was trained on %s (weights %s) but is applied to %s (weights %s); its output may be wrong",
        what,
        trained.get("name"),
        _short(expected),
        model_name,
        _short(current),
    )
    return True


def _short(hashes: dict[str, str]) -> str:
    return ", ".join(f"{k}:{v[:10]}" for k, v in hashes.items()) or "none"


# --- staging for offline clusters -----------------------------------------------------------------


def verify_model_folder(folder: Path) -> list[str]:
    """Format check plus every safetensors header readable; returns the weight files checked."""
    from safetensors import safe_open

    check_model_folder(folder)
    files = sorted(folder.glob("*.safetensors"))
    if not files:
        raise WeightsError(f"{folder}: no *.safetensors weight files")
    for path in files:
        try:
            with safe_open(str(path), framework="pt") as f:
                f.keys()
        except Exception as err:
            raise WeightsError(f"{path}: unreadable safetensors header ({err}); delete it and download again") from None
    return [p.name for p in files]


def verify_codec_folder(folder: Path) -> list[str]:
    import zipfile

    check_codec_folder(folder)
    if not zipfile.is_zipfile(folder / "model.pth"):  # torch.save's format; a truncated download is not a zip
        raise WeightsError(f"{folder / 'model.pth'}: not a complete torch checkpoint; delete it and download again")
    return ["model.pth"]


def download(output_dir: str | Path, model: str, codec: str) -> tuple[Path, Path]:
    """Fetch `model` and `codec` (hub ids, pinned by default) into `output_dir`, verify them, return both folders.

    The codec folder gets the HuBERT its constructor needs in `semantic_teacher/`, so the two folders are
    all an offline machine needs.
    """
    out = Path(output_dir)
    refs = {}
    for what, name in (("model", model), ("codec", codec)):
        ref = parse_ref(name)
        if ref is None:
            raise WeightsError(f"download needs a hub id for the {what} (owner/repo[@revision]), got {name!r}")
        refs[what] = ref
    model_dir = fetch(refs["model"], MODEL_FILES, str(out / refs["model"].repo.split("/")[-1]))
    verify_model_folder(model_dir)
    codec_dir = fetch(refs["codec"], CODEC_FILES, str(out / refs["codec"].repo.split("/")[-1]))
    verify_codec_folder(codec_dir)
    teacher_name = os.environ.get("HIGGS_LORA_SEMANTIC_TEACHER", SEMANTIC_TEACHER_REPO)
    teacher_ref = parse_ref(teacher_name)
    if teacher_ref is not None:
        teacher = fetch(teacher_ref, TEACHER_FILES, str(codec_dir / SEMANTIC_TEACHER_DIR))
        if not (teacher / "config.json").is_file():
            raise WeightsError(f"{teacher_ref}: no config.json in the semantic teacher snapshot")
    return model_dir, codec_dir
