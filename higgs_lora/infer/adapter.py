"""Loading a LoRA adapter for inference: served unmerged, on top of the loaded base model.

PEFT's forward adds the adapter's update at run time (adapter weights kept in fp32 by PEFT), so
nothing of it is rounded into bf16 base weights. Merging into a standalone model is `infer.merge`.
"""

from __future__ import annotations

from pathlib import Path


def load_adapter(model, lora_path: str):
    """Base model + LoRA adapter, unmerged: PEFT's forward adds the adapter's update at run time
    (adapter weights kept in fp32 by PEFT), so nothing of it is rounded into bf16 base weights."""
    from peft import PeftModel

    if not (Path(lora_path) / "adapter_config.json").is_file():
        raise FileNotFoundError(
            f"{lora_path}: no adapter_config.json (pass a training --output_dir, or a "
            f"merged model as --model_path without --lora_path)"
        )
    return PeftModel.from_pretrained(model, str(lora_path)).eval()
