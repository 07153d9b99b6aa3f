"""Checks before any compute is spent: output folder, disk space, data, model and codec.

Each failure is a ValueError/FileNotFoundError with one line naming the problem and the fix (the
CLI prints it and exits 2). Nothing here loads weights or creates the output folder.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from .config import TrainConfig

TINY = "tiny"
BYTES_PER_LORA_PARAM = 4 + 8  # fp32 adapter weights + AdamW's two fp32 moments
FIXED_CHECKPOINT_BYTES = 64 * 2**20  # trainer state, RNG, scheduler, tokenizer files: generous


def _nearest_existing(path: Path) -> Path:
    path = path.absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def check_output_writable(output_dir: str | Path) -> Path:
    """The folder (or, if it does not exist yet, the folder that would hold it) accepts new files."""
    output_dir = Path(output_dir)
    if output_dir.exists() and not output_dir.is_dir():
        raise ValueError(f"--output_dir {output_dir} is a file, not a folder; choose a folder")
    base = _nearest_existing(output_dir)
    if not base.is_dir():
        raise ValueError(f"--output_dir {output_dir}: {base} is a file, not a folder")
    if not os.access(base, os.W_OK | os.X_OK):
        raise ValueError(f"--output_dir {output_dir}: {base} is not writable; choose a folder you can write to")
    return base


def model_config(name_or_path: str) -> dict | None:
    """config.json of a local model folder or a cached hub model (None for `tiny`)."""
    if name_or_path == TINY:
        return None
    return json.loads(Path(resolve_model_config(name_or_path)).read_text(encoding="utf-8"))


def resolve_model_config(name_or_path: str, what: str = "--base_model") -> str:
    """Path of the model's config.json: a local folder, the hub cache, or a download of that one file."""
    path = Path(name_or_path)
    looks_local = path.exists() or name_or_path.startswith((".", "/", "~")) or name_or_path.count("/") != 1
    if looks_local:
        if not path.is_dir():
            raise FileNotFoundError(f"{what} {name_or_path}: no such folder (give a model folder, a hub id "
                                    f"such as bosonai/..., or `tiny`)")
        if not (path / "config.json").is_file():
            raise FileNotFoundError(f"{what} {name_or_path}: the folder has no config.json; is it a downloaded "
                                    "model folder?")
        return str(path / "config.json")
    from huggingface_hub import hf_hub_download, try_to_load_from_cache

    cached = try_to_load_from_cache(name_or_path, "config.json")
    if isinstance(cached, str):
        return cached
    try:
        return hf_hub_download(name_or_path, "config.json")
    except Exception as err:  # offline, unknown id, gated, DNS: all mean "cannot get it from here"
        raise ValueError(
            f"{what} {name_or_path} is not in the local Hugging Face cache and cannot be fetched from the hub "
            f"({type(err).__name__}). Download it where there is internet (`huggingface-cli download "
            f"{name_or_path} --local-dir DIR`) and pass {what} DIR, or use {what} tiny for a test run") from None


def check_codec(name_or_path: str) -> None:
    if name_or_path == TINY:
        return
    path = Path(name_or_path)
    if path.is_dir():
        missing = [n for n in ("config.json", "model.pth") if not (path / n).is_file()]
        if missing:
            raise FileNotFoundError(f"--audio_tokenizer {name_or_path}: the folder lacks {', '.join(missing)}")
        return
    resolve_model_config(name_or_path, what="--audio_tokenizer")


def estimate_lora_parameters(config: dict, r: int, targets: list[str]) -> int:
    """LoRA parameters (r x (in + out) per adapted Linear) from a Higgs Audio config.json alone."""
    text = config.get("text_config", config)
    hidden = text["hidden_size"]
    heads = text["num_attention_heads"]
    head_dim = text.get("head_dim") or hidden // heads
    kv = text.get("num_key_value_heads", heads) * head_dim
    inter = text["intermediate_size"]
    audio_inter = config.get("audio_ffn_intermediate_size", inter)
    layers = text["num_hidden_layers"]
    dual = len(config.get("audio_dual_ffn_layers") or [])
    audio_out = config.get("audio_num_codebooks", 8) * (config.get("audio_codebook_size", 1024) + 2)
    per_layer = {
        "self_attn.q_proj": hidden + heads * head_dim, "self_attn.k_proj": hidden + kv,
        "self_attn.v_proj": hidden + kv, "self_attn.o_proj": heads * head_dim + hidden,
        "mlp.gate_proj": hidden + inter, "mlp.up_proj": hidden + inter, "mlp.down_proj": inter + hidden,
    }
    per_dual_layer = {"audio_mlp.gate_proj": hidden + audio_inter, "audio_mlp.up_proj": hidden + audio_inter,
                      "audio_mlp.down_proj": audio_inter + hidden}
    heads_once = {"text_lm_head": hidden + text["vocab_size"], "audio_lm_head": hidden + audio_out}
    total = 0
    for target in targets:
        if target in per_layer:
            total += layers * per_layer[target]
        elif target in per_dual_layer:
            total += dual * per_dual_layer[target]
        elif target in heads_once:
            total += heads_once[target]
    return total * r


def checkpoint_bytes(lora_parameters: int) -> int:
    return lora_parameters * BYTES_PER_LORA_PARAM + FIXED_CHECKPOINT_BYTES


def check_disk_space(output_dir: str | Path, lora_parameters: int, save_total_limit: int) -> int:
    """Room for the kept checkpoints, one being written, and the final adapter; returns the bytes needed."""
    kept = max(save_total_limit, 1) + 1  # rotation deletes the oldest only after the new one is written
    needed = kept * checkpoint_bytes(lora_parameters) + lora_parameters * 4
    base = _nearest_existing(Path(output_dir))
    free = shutil.disk_usage(base).free
    if free < needed:
        raise ValueError(f"--output_dir {output_dir}: {free / 2**30:.2f} GiB free on its disk, the run needs about "
                         f"{needed / 2**30:.2f} GiB ({kept} checkpoints of {checkpoint_bytes(lora_parameters) / 2**20:.0f} "
                         f"MiB for {lora_parameters:,} LoRA parameters); free space, lower --save_total_limit "
                         "or --lora_r, or choose another --output_dir")
    return needed


def check_data_readable(train_data: str | Path) -> None:
    path = Path(train_data)
    if not path.is_file():
        raise FileNotFoundError(f"--train_data {train_data}: no such file")
    try:
        with path.open("rb") as f:
            f.read(1)
    except OSError as err:
        raise ValueError(f"--train_data {train_data}: cannot be read ({err.strerror or err})") from None


def preflight(cfg: TrainConfig, stage=None) -> dict:
    """Run every check; returns what it found. `stage(name)` is told which check runs (data, model, codec, save)."""
    stage = stage or (lambda name: None)
    stage("save")
    check_output_writable(cfg.output_dir)
    stage("data")
    check_data_readable(cfg.train_data)
    stage("model")
    config = model_config(cfg.base_model)
    stage("codec")
    check_codec(cfg.audio_tokenizer)
    if config is None:  # tiny: its config is built on first use, and it is a few KB
        from ..model.tiny import ensure_tiny_model

        config = json.loads((Path(ensure_tiny_model()) / "config.json").read_text(encoding="utf-8"))
    lora = estimate_lora_parameters(config, cfg.lora_r, cfg.lora_targets)
    stage("save")
    needed = check_disk_space(cfg.output_dir, lora, cfg.save_total_limit)
    return {"lora_parameters_estimate": lora, "disk_bytes_needed": needed}
