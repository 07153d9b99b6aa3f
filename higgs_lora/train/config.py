"""The training settings: one dataclass, importable without torch (the CLI builds `--help` from it)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from ..defaults import AUDIO_TOKENIZER, BASE_MODEL, DEFAULT_LORA_TARGETS, DEFAULT_SYSTEM_PROMPT

RUN_CONFIG = "higgs_lora_run.json"  # the run's settings, next to the adapter; merge/infer read them back


@dataclass
class TrainConfig:
    train_data: str
    output_dir: str = "checkpoints/voice_cloning"
    base_model: str = BASE_MODEL
    audio_tokenizer: str = AUDIO_TOKENIZER
    system_prompt: str = DEFAULT_SYSTEM_PROMPT
    batch_size: int = 4
    gradient_accumulation_steps: int = 4
    learning_rate: float = 5e-4
    num_epochs: float = 3.0
    max_steps: int = -1
    warmup_ratio: float = 0.03
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    lora_r: int = 64
    lora_alpha: int = 128
    lora_dropout: float = 0.05
    lora_targets: list[str] = field(default_factory=lambda: list(DEFAULT_LORA_TARGETS))
    text_loss_weight: float = 1.0
    audio_loss_weight: float = 1.0
    mixed_precision: bool = True
    use_gradient_checkpointing: bool = False
    dataloader_num_workers: int = 2
    logging_steps: int = 10
    save_steps: int = 500
    save_total_limit: int = 2
    seed: int = 42
    resume_from_checkpoint: str | None = None
    quick_test: bool = False
    report_to: str = "tensorboard"
    # Samples during training (eval/callback.py): every N steps, K fixed samples of eval_data (else train_data).
    eval_every_steps: int = 0
    eval_samples: int = 4
    eval_data: str | None = None
    eval_max_new_tokens: int = 500


def read_run_config(folder: str | Path) -> dict:
    """The settings a training run wrote next to its adapter ({} when the folder has none)."""
    path = Path(folder) / RUN_CONFIG
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
