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


def model_config(name_or_path: str) -> dict:
    """config.json of the model (a folder, `tiny`, or a hub id at its pinned revision: config only, no weights);
    a local folder must also hold the tokenizer and every weight shard (a partial copy fails here, not mid-load)."""
    from ..model.folder_checks import check_model_complete
    from ..model.resolve import model_config_path

    config = json.loads(model_config_path(name_or_path).read_text(encoding="utf-8"))
    check_model_complete(name_or_path)
    return config


def check_codec(name_or_path: str) -> None:
    from ..model.resolve import check_codec_source

    check_codec_source(name_or_path)


def estimate_lora_parameters(config: dict, r: int, targets: list[str]) -> int:
    """LoRA parameters from a Higgs Audio config.json alone: the planner's count (PEFT's suffix rule).

    The planner refuses configs with a Whisper tower (it has no memory model for it); adapters inside
    a tower are then left out of this estimate, which only sizes the checkpoints on disk.
    """
    from .model_shape import ModelShape, count_params

    return count_params(ModelShape.from_config({**config, "skip_audio_tower": True}), r, targets).lora


def checkpoint_bytes(lora_parameters: int) -> int:
    return lora_parameters * BYTES_PER_LORA_PARAM + FIXED_CHECKPOINT_BYTES


def check_disk_space(output_dir: str | Path, lora_parameters: int, save_total_limit: int) -> int:
    """Room for the kept checkpoints, one being written, and the final adapter; returns the bytes needed."""
    kept = max(save_total_limit, 1) + 1  # rotation deletes the oldest only after the new one is written
    needed = kept * checkpoint_bytes(lora_parameters) + lora_parameters * 4
    base = _nearest_existing(Path(output_dir))
    free = shutil.disk_usage(base).free
    if free < needed:
        raise ValueError(
            f"--output_dir {output_dir}: {free / 2**30:.2f} GiB free on its disk, the run needs about "
            f"{needed / 2**30:.2f} GiB ({kept} checkpoints of {checkpoint_bytes(lora_parameters) / 2**20:.0f} "
            f"MiB for {lora_parameters:,} LoRA parameters); free space, lower --save_total_limit "
            "or --lora_r, or choose another --output_dir"
        )
    return needed


def check_data_readable(train_data: str | Path) -> None:
    path = Path(train_data)
    if not path.is_file():
        from ..data.data_file import not_a_data_file

        reason = not_a_data_file(path)
        raise FileNotFoundError(
            f"--train_data {train_data}: {'no such file' if reason == 'data file not found' else reason}"
        )
    try:
        with path.open("rb") as f:
            f.read(1)
    except OSError as err:
        raise ValueError(f"--train_data {train_data}: cannot be read ({err.strerror or err})") from None


def preflight(cfg: TrainConfig, stage=None, check_model: bool = True) -> dict:
    """Run every check; returns what it found. `stage(name)` is told which check runs (data, model, codec, save).
    `check_model=False`: the caller brings its own model object (gpu-check), so there is no model to look for."""
    stage = stage or (lambda name: None)
    stage("save")
    check_output_writable(cfg.output_dir)
    stage("data")
    check_data_readable(cfg.train_data)
    stage("model")
    config = model_config(cfg.base_model) if check_model else None
    stage("codec")
    check_codec(cfg.audio_tokenizer)
    if config is None:  # a model object handed in by the caller: nothing on disk to check
        return {}
    lora = estimate_lora_parameters(config, cfg.lora_r, cfg.lora_targets)
    stage("save")
    needed = check_disk_space(cfg.output_dir, lora, cfg.save_total_limit)
    return {"lora_parameters_estimate": lora, "disk_bytes_needed": needed}
