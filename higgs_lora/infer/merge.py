"""Adapter -> merged model folder for shipping.

The merge runs in fp32 (base weights upcast, LoRA update added in fp32), then the result is cast
to the output dtype. Casting rounds the merged weight, and with it the adapter's update: a LoRA
update is small next to the weight it sits on, so bf16's 8-bit mantissa can erase much of it.
`merge_adapter` measures that, over all adapted weights together, as

    ||ΔW_out − ΔW_fp32|| / ||ΔW_fp32||,   ΔW_out = cast(W + ΔW_fp32) − W

and warns when it exceeds WARN_UPDATE_ERROR, so a user can choose fp32 (or serve the adapter
unmerged with `infer --lora_path`, which rounds nothing).

The folder holds safetensors shards, config.json, the tokenizer files, the run settings
(`higgs_lora_run.json`) and `higgs_lora_merge.json` (the adapter it came from, dtype, error).
It loads with `HiggsAudioModel.from_pretrained` and boson's `HiggsAudioServeEngine`.
"""

from __future__ import annotations

import json
import logging
import math
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch

from ..model.load import load_model, load_tokenizer, resolve_dtype, resolve_model_path
from ..model.provenance import warn_if_other_base
from ..train.config import RUN_CONFIG, read_run_config

log = logging.getLogger(__name__)

MERGE_RECORD = "higgs_lora_merge.json"
WARN_UPDATE_ERROR = 0.01  # 1 % of the adapter's update lost to rounding deserves a warning


@dataclass
class MergeReport:
    output_path: Path
    dtype: str
    update_error: float  # relative error the output dtype puts on the adapter's update (0 for fp32)
    adapted_weights: int

    @property
    def large(self) -> bool:
        return self.update_error > WARN_UPDATE_ERROR


def _rounding_error(peft_model, out_dtype: torch.dtype) -> tuple[float, int]:
    """||cast(W+ΔW) − W − ΔW|| / ||ΔW|| summed over every LoRA layer and fully trained module."""
    from peft.tuners.lora import LoraLayer
    from peft.utils import ModulesToSaveWrapper

    err_sq = ref_sq = 0.0
    count = 0
    for module in peft_model.modules():
        pairs = []
        if isinstance(module, LoraLayer):
            base = module.get_base_layer().weight
            for name in module.active_adapters:
                if name in module.lora_A:
                    pairs.append((base, module.get_delta_weight(name)))
        elif isinstance(module, ModulesToSaveWrapper):
            for name in module.active_adapters if hasattr(module, "active_adapters") else [module.active_adapter]:
                if name in module.modules_to_save:
                    base = module.original_module.weight
                    pairs.append((base, module.modules_to_save[name].weight - base))
        for base, delta in pairs:
            base32, delta32 = base.detach().float(), delta.detach().float()
            out = (base32 + delta32).to(out_dtype).float()
            err_sq += float(((out - base32) - delta32).pow(2).sum())
            ref_sq += float(delta32.pow(2).sum())
            count += 1
    return (math.sqrt(err_sq / ref_sq) if ref_sq > 0 else 0.0), count


def merge_adapter(
    base_model: str,
    lora_path: str | Path,
    output_path: str | Path,
    dtype: str = "auto",
    device: str = "cpu",
    overwrite: bool = False,
    max_shard_size: str = "5GB",
) -> MergeReport:
    """Fold the LoRA weights into the base model in fp32 and save model + tokenizer to `output_path`.

    `dtype="auto"` keeps the base model's stored dtype (bf16 for the released model).
    """
    from peft import PeftModel

    lora_path, output_path = Path(lora_path), Path(output_path)
    if not (lora_path / "adapter_config.json").is_file():
        raise FileNotFoundError(f"{lora_path}: no adapter_config.json (is this a training --output_dir?)")
    if output_path.exists() and any(output_path.iterdir()) and not overwrite:
        raise FileExistsError(f"{output_path} exists and is not empty; pass --overwrite to replace its files")
    warn_if_other_base(read_run_config(lora_path), base_model, f"merge {lora_path}")
    out_dtype = resolve_dtype(_stored_dtype(base_model) if dtype == "auto" else dtype, device)
    model = load_model(base_model, device=device, dtype=torch.float32)
    peft_model = PeftModel.from_pretrained(model, str(lora_path))
    with torch.no_grad():
        error, count = _rounding_error(peft_model, out_dtype)
        merged = peft_model.merge_and_unload().to(out_dtype)
    merged.config.torch_dtype = out_dtype
    output_path.mkdir(parents=True, exist_ok=True)
    merged.save_pretrained(output_path, safe_serialization=True, max_shard_size=max_shard_size)
    load_tokenizer(base_model).save_pretrained(output_path)
    if (lora_path / RUN_CONFIG).is_file():
        shutil.copy(lora_path / RUN_CONFIG, output_path / RUN_CONFIG)
    dtype_name = str(out_dtype).replace("torch.", "")
    adapter_config = json.loads((lora_path / "adapter_config.json").read_text(encoding="utf-8"))
    (output_path / MERGE_RECORD).write_text(
        json.dumps(
            {
                "base_model": base_model,
                "lora_path": str(lora_path),
                "dtype": dtype_name,
                "merged_in": "float32",
                "adapter_update_relative_error": error,
                "adapted_weights": count,
                "adapter": {
                    k: adapter_config.get(k)
                    for k in ("r", "lora_alpha", "target_modules", "modules_to_save", "peft_type")
                },
            },
            indent=2,
            default=list,
        ),
        encoding="utf-8",
    )
    return MergeReport(output_path, dtype_name, error, count)


def _stored_dtype(base_model: str) -> str:
    """The dtype the base weights are stored in ("bfloat16" for the released model), for a lossless merge."""
    import boson_multimodal.model.higgs_audio  # noqa: F401  registers the higgs_audio config type
    from transformers import AutoConfig

    stored = AutoConfig.from_pretrained(resolve_model_path(base_model)).torch_dtype
    return str(stored).replace("torch.", "") if stored is not None else "float32"
