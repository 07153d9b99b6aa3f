"""The training settings: one dataclass, importable without torch (the CLI builds `--help` from it)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from ..data.text import DEFAULT_TEXT_NORMALIZATION
from ..defaults import AUDIO_TOKENIZER, BASE_MODEL, DEFAULT_LORA_TARGETS, DEFAULT_SYSTEM_PROMPT

RUN_CONFIG = "higgs_lora_run.json"  # the run's settings, next to the adapter; merge/infer read them back


@dataclass
class TrainConfig:
    train_data: str
    output_dir: str = "checkpoints/voice_cloning"
    base_model: str = BASE_MODEL
    audio_tokenizer: str = AUDIO_TOKENIZER
    system_prompt: str = DEFAULT_SYSTEM_PROMPT
    # Transcript normaliser spec (data/text.py); stored in the run settings so inference replays it.
    text_normalization: str = DEFAULT_TEXT_NORMALIZATION
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
    consistency_loss_weight: float = 0.0  # KL to the adapter-off base model on target frames (0: off)
    mixed_precision: str = "auto"  # auto | bf16 | fp16 | no (see model/precision.py)
    attn_implementation: str = "sdpa"  # sdpa | flash_attention_2 | eager (defaults.ATTENTION_CHOICES)
    # auto: the memory guard turns it on only when the longest batch needs it (train/memory_guard.py);
    # on / off: always / never. After start-up the run settings hold what ran (on or off).
    use_gradient_checkpointing: str = "auto"
    # Set at start-up, not a flag: how many decoder layers (the first k) the run checkpointed.
    checkpointed_layers: int = 0
    max_audio_seconds: float | None = None  # drop (and list) samples with longer reference + target audio
    dataloader_num_workers: int = 2
    logging_steps: int = 10
    save_steps: int = 500
    save_total_limit: int = 2
    seed: int = 42
    resume_from_checkpoint: str | None = None  # a checkpoint folder, or "latest" (newest complete one)
    overwrite_output_dir: bool = False  # start over in a folder that holds an earlier run
    skip_invalid: bool = False  # drop invalid samples (skipped_samples.json, skipped_encoding.json) instead of stopping
    max_nonfinite_steps: int = 5  # abort after this many NaN/inf steps in a row (each one is skipped)
    quick_test: bool = False
    eval_data: str | None = None  # held-out file for eval_loss ...
    eval_split: float = 0.0  # ... or this fraction of train_data held out (by speaker when known)
    eval_steps: int = 0  # eval every N steps (0: every --save_steps)
    deepspeed: str | None = None  # Trainer's DeepSpeed config (JSON path); untested on GPU here
    fsdp: str = ""  # Trainer's FSDP option string, e.g. "full_shard auto_wrap"; untested on GPU here
    report_to: str = "tensorboard"
    cache_dir: str | None = None  # audio-code cache (default OUTPUT_DIR/code_cache); see data/cache.py
    require_cache: bool = False  # fail instead of encoding when the cache misses files
    max_bad_samples: int = 10  # samples allowed to fail at read time before the run aborts
    max_tokens_per_batch: int = 0  # >0: length-aware batches under this padded-token budget (batch_size ignored)
    encode_whisper_embed: bool = False  # ask for Whisper features; refused unless the model has an audio tower
    # Samples during training (eval/callback.py): every N steps, K fixed samples of eval_data (else train_data).
    eval_every_steps: int = 0
    eval_samples: int = 4
    eval_max_new_tokens: int = 500


def read_run_config(folder: str | Path) -> dict:
    """The settings a training run wrote next to its adapter ({} when the folder has none)."""
    path = Path(folder) / RUN_CONFIG
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
