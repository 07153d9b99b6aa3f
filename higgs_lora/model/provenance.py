"""Provenance: what a weights name resolved to (repo, revision, folder) and the sha256 of its weight files;
the warning when an adapter is served on base weights other than those it was trained on."""

from __future__ import annotations

import hashlib
import logging
import re
from pathlib import Path

from .refs import parse_ref
from .resolve import codec_folder, model_folder

log = logging.getLogger(__name__)

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
