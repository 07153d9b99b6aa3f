"""`higgs-lora download`: the model and codec fetched at their pinned revisions into folders, and verified,
so an offline cluster needs nothing else."""

from __future__ import annotations

import os
from pathlib import Path

from .folder_checks import check_codec_folder, check_model_folder
from .refs import SEMANTIC_TEACHER_DIR, SEMANTIC_TEACHER_REPO, WeightsError, parse_ref
from .resolve import CODEC_FILES, MODEL_FILES, TEACHER_FILES, fetch


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
