"""OUTPUT_DIR/README.md: what was trained on what, with which settings, and how to use it.

PEFT's `save_pretrained` writes an empty model-card template there; the adapter's folder is what users
share, so it gets a card that says what the adapter is instead: huggingface_hub's `ModelCard`, its YAML
metadata (`ModelCardData`: a PEFT LoRA adapter, its base model where that is a hub repo, text-to-speech)
above the text.
"""

from __future__ import annotations

import shlex
from pathlib import Path

from .eval_split import HELD_OUT


def adapter_card(run: dict, output_dir: str, steps: int, samples: int, final_loss: float | None) -> str:
    """The model card (README.md) for an adapter folder from the run settings (`higgs_lora_run.json`)."""
    from huggingface_hub import ModelCard, ModelCardData

    from ..model.precision import Precision

    out = shlex.quote(str(output_dir))
    base = (run.get("provenance") or {}).get("base_model") or {}
    revision = f" at revision `{base['revision']}`" if base.get("revision") else ""
    weights = ", ".join(
        f"`{name}` sha256 `{digest[:12]}…`" for name, digest in (base.get("weights_sha256") or {}).items()
    )
    system_prompt = run.get("system_prompt")
    data = ModelCardData(
        library_name="peft",
        base_model=base.get("repo"),  # a hub repo only: a local folder or `tiny` is no hub reference
        pipeline_tag="text-to-speech",
        tags=["lora", "voice-cloning", "higgs-lora"],
    )
    lines = [
        "# Higgs Audio v2 voice-cloning LoRA adapter (higgs-lora)",
        "",
        f"A LoRA adapter for `{run.get('base_model')}`{revision}, trained with higgs-lora for zero-shot voice "
        "cloning: given a reference clip and its transcript, the model speaks a new text in that voice.",
        "",
        "## What it was trained on",
        "",
        f"- base model: `{run.get('base_model')}`{revision}" + (f" ({weights})" if weights else ""),
        f"- audio tokenizer: `{run.get('audio_tokenizer')}`",
        f"- data: `{run.get('train_data')}`, {samples} samples"
        + (f", held-out data `{run['eval_data']}`" if run.get("eval_data") else ""),
        f"- {steps} optimizer steps; final training loss {final_loss:.4f}"
        if final_loss is not None
        else f"- {steps} optimizer steps",
        "",
        "## Settings",
        "",
        f"- LoRA r={run.get('lora_r')}, alpha={run.get('lora_alpha')}, dropout={run.get('lora_dropout')}, "
        f"targets: {', '.join(run.get('lora_targets') or [])}",
        (
            f"- batches of up to {run['max_tokens_per_batch']:,} padded tokens per device (length-aware)"
            if run.get("max_tokens_per_batch")
            else f"- batch {run.get('batch_size')} per device"
        )
        + f" x {run.get('gradient_accumulation_steps')} accumulation, "
        f"learning rate {run.get('learning_rate')}, {Precision.words(run.get('mixed_precision'))}",
        f"- loss weights: text {run.get('text_loss_weight')}, audio {run.get('audio_loss_weight')}, "
        f"consistency {run.get('consistency_loss_weight', 0.0)}",
        f"- system prompt: {system_prompt!r}" if system_prompt else "- system prompt: none",
        f"- text normalization: `{run.get('text_normalization')}`",
        "",
        "`higgs_lora_run.json` holds every setting; `infer`, `clone`, `merge`, `eval` and `check-alignment` read "
        "it, so the prompt, codec and text front-end at inference are the ones used in training.",
        "",
        "## How to use it",
        "",
        "```bash",
        f'higgs-lora clone --lora_path {out} --ref_audio speaker.wav --ref_text "transcript of speaker.wav" \\',
        '    --text "the text to speak" --output out.wav',
        f"higgs-lora infer --lora_path {out} --chatml_file samples.json --output_dir cloned/",
        f"higgs-lora eval --lora_path {out} --data "
        + (shlex.quote(str(Path(output_dir) / HELD_OUT)) if run.get("eval_split") else "heldout.json")
        + " --output_dir eval/"
        + ("   # the samples --eval_split held out" if run.get("eval_split") else ""),
        f"higgs-lora merge --lora_path {out} --output_path {shlex.quote(str(output_dir) + '-merged')}   # one folder, no PEFT needed",
        "```",
        "",
        "The base model's weights are under the Boson Higgs Audio 2 Community License; this adapter is a "
        "derivative of them.",
        "",
    ]
    text = "\n".join(lines)
    return str(ModelCard(f"---\n{data.to_yaml()}\n---\n{text}"))
