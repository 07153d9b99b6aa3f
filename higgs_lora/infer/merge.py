"""Adapter -> merged model folder that `HiggsAudioModel.from_pretrained` loads (tokenizer included)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path


from ..model.load import load_model, load_tokenizer, resolve_model_path
from ..model.hub import warn_if_other_base
from ..train.config import RUN_CONFIG, read_run_config


def merge_adapter(base_model: str, lora_path: str | Path, output_path: str | Path, dtype: str = "auto",
                  device: str = "cpu", overwrite: bool = False) -> Path:
    """Fold the LoRA weights into the base model and save model + tokenizer to `output_path`.

    `dtype="auto"` keeps the base model's stored dtype (bf16 for the released model).
    """
    from peft import PeftModel

    lora_path, output_path = Path(lora_path), Path(output_path)
    if not (lora_path / "adapter_config.json").is_file():
        raise FileNotFoundError(f"{lora_path}: no adapter_config.json (is this a training --output_dir?)")
    if output_path.exists() and any(output_path.iterdir()) and not overwrite:
        raise FileExistsError(f"{output_path} exists and is not empty; pass --overwrite to replace its files")
    warn_if_other_base(read_run_config(lora_path), base_model, f"merge {lora_path}")
    model = load_model(base_model, device=device, dtype=_stored_dtype(base_model) if dtype == "auto" else dtype)
    merged = PeftModel.from_pretrained(model, str(lora_path)).merge_and_unload()
    output_path.mkdir(parents=True, exist_ok=True)
    merged.save_pretrained(output_path, safe_serialization=True)
    load_tokenizer(base_model).save_pretrained(output_path)
    if (lora_path / RUN_CONFIG).is_file():
        shutil.copy(lora_path / RUN_CONFIG, output_path / RUN_CONFIG)
    (output_path / "higgs_lora_merge.json").write_text(
        json.dumps({"base_model": base_model, "lora_path": str(lora_path)}, indent=2), encoding="utf-8")
    return output_path


def _stored_dtype(base_model: str) -> str:
    """The dtype the base weights are stored in ("bfloat16" for the released model), for a lossless merge."""
    import boson_multimodal.model.higgs_audio  # noqa: F401  registers the higgs_audio config type
    from transformers import AutoConfig

    stored = AutoConfig.from_pretrained(resolve_model_path(base_model)).torch_dtype
    return str(stored).replace("torch.", "") if stored is not None else "float32"
