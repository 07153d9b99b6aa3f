"""`higgs-lora train`: LoRA fine-tuning (torchrun for several GPUs). Also the flags of trainer/train.py."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..defaults import AUDIO_TOKENIZER, BASE_MODEL, DEFAULT_LORA_TARGETS
from ..train.config import TrainConfig
from .common import add_system_prompt

NAME = "train"
SUMMARY = "LoRA fine-tuning (use torchrun for several GPUs)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    d = TrainConfig(train_data="")
    p.add_argument("--train_data", help="canonical ChatML JSON/JSONL file (see README)")
    p.add_argument("--output_dir", default=None, help=f"checkpoints, final adapter, metrics.jsonl (default: {d.output_dir})")
    p.add_argument("--base_model", default=None, help=f"hub id, local folder or tiny (default: {BASE_MODEL}; tiny with --quick_test)")
    p.add_argument("--audio_tokenizer", default=None, help=f"hub id, local folder or tiny (default: {AUDIO_TOKENIZER}; tiny with --quick_test and no --base_model)")
    add_system_prompt(p)
    p.add_argument("--batch_size", type=int, default=d.batch_size, help="samples per GPU per micro-batch")
    p.add_argument("--gradient_accumulation_steps", type=int, default=d.gradient_accumulation_steps, help="micro-batches per optimizer step; effective batch = batch_size x this x GPUs")
    p.add_argument("--learning_rate", type=float, default=d.learning_rate, help="peak learning rate (cosine schedule after warmup)")
    p.add_argument("--num_epochs", type=float, default=d.num_epochs, help="passes over the data (ignored when --max_steps > 0)")
    p.add_argument("--max_steps", type=int, default=d.max_steps, help="stop after this many optimizer steps (-1: use epochs)")
    p.add_argument("--warmup_ratio", type=float, default=d.warmup_ratio, help="fraction of steps spent warming up the learning rate")
    p.add_argument("--lora_r", type=int, default=d.lora_r, help="LoRA rank")
    p.add_argument("--lora_alpha", type=int, default=d.lora_alpha, help="LoRA scaling numerator (scale = alpha / r)")
    p.add_argument("--lora_dropout", type=float, default=d.lora_dropout, help="dropout on the LoRA branch")
    p.add_argument("--lora_targets", nargs="+", default=DEFAULT_LORA_TARGETS, metavar="SUFFIX",
                   help="module-name suffixes to adapt; missing ones are skipped (default: attention, mlp, audio_mlp, both heads)")
    p.add_argument("--text_loss_weight", type=float, default=d.text_loss_weight, help="weight of the shifted text cross-entropy")
    p.add_argument("--audio_loss_weight", type=float, default=d.audio_loss_weight, help="weight of the shifted per-codebook audio cross-entropy")
    p.add_argument("--mixed_precision", action=argparse.BooleanOptionalAction, default=True,
                   help="bf16 on CUDA (default on; ignored on CPU)")
    p.add_argument("--use_gradient_checkpointing", action="store_true", help="recompute decoder layers in backward to save memory")
    p.add_argument("--dataloader_num_workers", type=int, default=d.dataloader_num_workers, help="data loading processes per GPU")
    p.add_argument("--logging_steps", type=int, default=d.logging_steps, help="log (console, TensorBoard, metrics.jsonl) every N optimizer steps")
    p.add_argument("--save_steps", type=int, default=d.save_steps, help="write a resumable checkpoint every N optimizer steps")
    p.add_argument("--save_total_limit", type=int, default=d.save_total_limit, help="keep at most N checkpoints (oldest deleted)")
    p.add_argument("--seed", type=int, default=d.seed, help="seed for data order, dropout and LoRA init")
    p.add_argument("--resume_from_checkpoint", default=None, help="checkpoint folder to resume from")
    p.add_argument("--report_to", default=d.report_to, choices=["tensorboard", "none"], help="TensorBoard logs in OUTPUT_DIR/runs, or none")
    p.add_argument("--eval_every_steps", type=int, default=d.eval_every_steps,
                   help="every N optimizer steps clone --eval_samples samples, log audio + SIM/WER/duration/EOS to TensorBoard and metrics.jsonl (0 = off)")
    p.add_argument("--eval_samples", type=int, default=d.eval_samples, help="how many fixed samples --eval_every_steps clones")
    p.add_argument("--eval_data", default=None, help="held-out samples for --eval_every_steps (default: the first training samples)")
    p.add_argument("--eval_max_new_tokens", type=int, default=d.eval_max_new_tokens, help="cap per clip during training (40 ms per token)")
    p.add_argument("--quick_test", action="store_true",
                   help="a few steps on a few samples; without --base_model uses the tiny model and codec (no download)")



def train_config_from_args(args: argparse.Namespace):
    tiny_quick = args.quick_test and args.base_model is None
    base_model = args.base_model or ("tiny" if tiny_quick else BASE_MODEL)
    audio_tokenizer = args.audio_tokenizer or ("tiny" if tiny_quick else AUDIO_TOKENIZER)
    output_dir = args.output_dir or ("checkpoints/quick_test" if args.quick_test else "checkpoints/voice_cloning")
    train_data = args.train_data
    if train_data is None:
        if not args.quick_test:
            raise SystemExit("error: --train_data is required (or use --quick_test, which makes sample data)")
        from ..data.sample_data import create_sample_data

        train_data = str(create_sample_data(Path(output_dir) / "sample_data.json", overwrite=True))
    keys = TrainConfig.__dataclass_fields__.keys()
    values = {k: getattr(args, k) for k in keys if hasattr(args, k)}
    values.update(train_data=train_data, base_model=base_model, audio_tokenizer=audio_tokenizer, output_dir=output_dir)
    return TrainConfig(**values)



def run(args) -> int:
    from ..train.recipe import train

    out = train(train_config_from_args(args))
    print(f"adapter saved to {out}")
    return 0
