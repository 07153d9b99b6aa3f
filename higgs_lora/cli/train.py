"""`higgs-lora train`: LoRA fine-tuning (torchrun for several GPUs). Also the flags of trainer/train.py."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..defaults import ATTENTION_CHOICES, AUDIO_TOKENIZER, BASE_MODEL, DEFAULT_LORA_TARGETS
from ..train.config import TrainConfig
from .common import add_mixed_precision, add_system_prompt, add_text_normalization

NAME = "train"
SUMMARY = "LoRA fine-tuning (use torchrun for several GPUs)"
# A second Ctrl-C (the first one saves a checkpoint and stops cleanly), or one before training starts.
INTERRUPTED_HINT = "checkpoints already written are intact; --resume_from_checkpoint latest continues from the newest"


def add_arguments(p: argparse.ArgumentParser) -> None:
    d = TrainConfig(train_data="")
    p.add_argument("--train_data", help="canonical ChatML JSON/JSONL file (see README)")
    p.add_argument(
        "--output_dir", default=None, help=f"checkpoints, final adapter, metrics.jsonl (default: {d.output_dir})"
    )
    p.add_argument(
        "--base_model",
        default=None,
        help=f"hub id, local folder or tiny (default: {BASE_MODEL}; tiny with --quick_test)",
    )
    p.add_argument(
        "--audio_tokenizer",
        default=None,
        help=f"hub id, local folder or tiny (default: {AUDIO_TOKENIZER}; tiny with --quick_test and no --base_model)",
    )
    add_system_prompt(p)
    add_text_normalization(p, default=d.text_normalization)
    p.add_argument("--batch_size", type=int, default=d.batch_size, help="samples per GPU per micro-batch")
    p.add_argument(
        "--gradient_accumulation_steps",
        type=int,
        default=d.gradient_accumulation_steps,
        help="micro-batches per optimizer step; effective batch = batch_size x this x GPUs",
    )
    p.add_argument(
        "--learning_rate", type=float, default=d.learning_rate, help="peak learning rate (cosine schedule after warmup)"
    )
    p.add_argument(
        "--num_epochs", type=float, default=d.num_epochs, help="passes over the data (ignored when --max_steps > 0)"
    )
    p.add_argument(
        "--max_steps", type=int, default=d.max_steps, help="stop after this many optimizer steps (-1: use epochs)"
    )
    p.add_argument(
        "--warmup_ratio",
        type=float,
        default=d.warmup_ratio,
        help="fraction of steps spent warming up the learning rate",
    )
    p.add_argument("--lora_r", type=int, default=d.lora_r, help="LoRA rank")
    p.add_argument("--lora_alpha", type=int, default=d.lora_alpha, help="LoRA scaling numerator (scale = alpha / r)")
    p.add_argument("--lora_dropout", type=float, default=d.lora_dropout, help="dropout on the LoRA branch")
    p.add_argument(
        "--lora_targets",
        nargs="+",
        default=DEFAULT_LORA_TARGETS,
        metavar="SUFFIX",
        help="module-name suffixes to adapt; missing ones are skipped (default: attention, mlp, audio_mlp, both heads)",
    )
    p.add_argument(
        "--text_loss_weight", type=float, default=d.text_loss_weight, help="weight of the shifted text cross-entropy"
    )
    p.add_argument(
        "--audio_loss_weight",
        type=float,
        default=d.audio_loss_weight,
        help="weight of the shifted per-codebook audio cross-entropy",
    )
    p.add_argument(
        "--consistency_loss_weight",
        type=float,
        default=d.consistency_loss_weight,
        help="weight of the KL between the adapted and the base model's audio distributions on target "
        "frames (keeps zero-shot cloning; costs one extra forward per micro-batch; 0 = off)",
    )
    add_mixed_precision(
        p,
        default=d.mixed_precision,
        help="bf16: bf16 base weights + bf16 autocast, LoRA and optimizer in fp32; fp16: the same with loss "
        "scaling (GPUs without bf16); no: fp32. Bare flag = bf16; auto = bf16 on CUDA (fp16 where the GPU has "
        "no bf16), no on CPU",
    )
    p.add_argument(
        "--no-mixed_precision",
        dest="mixed_precision",
        action="store_const",
        const="no",
        help="same as --mixed_precision no",
    )
    p.add_argument(
        "--attn_implementation",
        default=d.attn_implementation,
        choices=ATTENTION_CHOICES,
        help="attention kernel: sdpa (PyTorch's; with two or more samples a batch needs no padding mask, so "
        "its flash kernel can run); flash_attention_2 (the flash-attn package, CUDA only); eager (the "
        "reference: slow, stores every T×T attention probability)",
    )
    p.add_argument(
        "--use_gradient_checkpointing",
        nargs="?",
        const="on",
        default=d.use_gradient_checkpointing,
        choices=["auto", "on", "off"],
        help="recompute decoder layers in backward to save memory (steps ~1.5x slower): auto = only when the "
        "memory check finds the longest batch does not fit without it; bare flag = on",
    )
    p.add_argument(
        "--max_audio_seconds",
        type=float,
        default=None,
        help="drop samples whose reference + target audio is longer (each dropped sample is listed)",
    )
    p.add_argument(
        "--dataloader_num_workers", type=int, default=d.dataloader_num_workers, help="data loading processes per GPU"
    )
    p.add_argument(
        "--logging_steps",
        type=int,
        default=d.logging_steps,
        help="log (console, TensorBoard, metrics.jsonl) every N optimizer steps",
    )
    p.add_argument(
        "--save_steps", type=int, default=d.save_steps, help="write a resumable checkpoint every N optimizer steps"
    )
    p.add_argument(
        "--save_total_limit", type=int, default=d.save_total_limit, help="keep at most N checkpoints (oldest deleted)"
    )
    p.add_argument("--seed", type=int, default=d.seed, help="seed for data order, dropout and LoRA init")
    p.add_argument(
        "--resume_from_checkpoint",
        default=None,
        metavar="PATH|latest",
        help="continue a run: a checkpoint folder, or latest (the newest complete checkpoint in --output_dir)",
    )
    p.add_argument(
        "--overwrite_output_dir",
        action="store_true",
        help="start a new run in an --output_dir that holds an earlier one (its checkpoints are removed)",
    )
    p.add_argument(
        "--skip_invalid",
        action="store_true",
        help="drop invalid samples and train on the rest instead of refusing to start: samples that fail validation are "
        "listed in OUTPUT_DIR/skipped_samples.json, clips that fail to encode in OUTPUT_DIR/skipped_encoding.json",
    )
    p.add_argument(
        "--max_nonfinite_steps",
        type=int,
        default=d.max_nonfinite_steps,
        help="NaN/inf loss or gradient: the step is skipped; abort after this many in a row",
    )
    p.add_argument(
        "--report_to",
        default=d.report_to,
        choices=["tensorboard", "none"],
        help="TensorBoard logs in OUTPUT_DIR/runs, or none",
    )
    p.add_argument(
        "--cache_dir",
        default=None,
        help="on-disk audio-code cache, shared by runs and ranks; built first when incomplete (default: OUTPUT_DIR/code_cache)",
    )
    p.add_argument(
        "--require_cache",
        action="store_true",
        help="encode nothing: fail if the code cache misses any file (build it with higgs-lora tokenize)",
    )
    p.add_argument(
        "--max_bad_samples",
        type=int,
        default=d.max_bad_samples,
        help="samples allowed to fail at read time (damaged/deleted cache entry) before the run aborts",
    )
    p.add_argument(
        "--max_tokens_per_batch",
        type=int,
        default=d.max_tokens_per_batch,
        help="length-aware batches of similar-length samples up to this many padded tokens per GPU (0: fixed --batch_size)",
    )
    p.add_argument(
        "--encode_whisper_embed",
        action="store_true",
        help="require Whisper features; refused unless the model's config has an audio tower (the released model has none)",
    )
    p.add_argument(
        "--eval_data",
        default=None,
        help="held-out data file: eval_loss (and its parts) every --eval_steps, and the samples "
        "--eval_every_steps clones (default: none; --eval_split holds some out instead)",
    )
    p.add_argument(
        "--eval_split",
        type=float,
        default=d.eval_split,
        help="hold out this fraction of --train_data for eval_loss instead (whole speakers when named; 0 = none)",
    )
    p.add_argument(
        "--eval_steps", type=int, default=d.eval_steps, help="evaluate every N optimizer steps (0 = every --save_steps)"
    )
    p.add_argument(
        "--eval_every_steps",
        type=int,
        default=d.eval_every_steps,
        help="every N optimizer steps clone --eval_samples samples, log audio + SIM/WER/duration/EOS "
        "to TensorBoard and metrics.jsonl (0 = off)",
    )
    p.add_argument(
        "--eval_samples", type=int, default=d.eval_samples, help="how many fixed samples --eval_every_steps clones"
    )
    p.add_argument(
        "--eval_max_new_tokens",
        type=int,
        default=d.eval_max_new_tokens,
        help="cap per clip during training (40 ms per token)",
    )
    p.add_argument(
        "--deepspeed",
        default=None,
        metavar="CONFIG.json",
        help="DeepSpeed config for Trainer (ZeRO; example: scripts/deepspeed_zero2.json; needs the deepspeed package)",
    )
    p.add_argument(
        "--fsdp", default=d.fsdp, metavar="OPTIONS", help='Trainer FSDP options, e.g. "full_shard auto_wrap"'
    )
    p.add_argument(
        "--quick_test",
        action="store_true",
        help="a few steps on a few samples, in a temporary folder unless --output_dir is given; ends with "
        "'environment OK' or the failing stage; without --base_model uses the tiny model and codec",
    )


def check_arguments(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Usage mistakes, refused at parse time (exit 2) before torch and transformers load."""
    if args.train_data is None and not args.quick_test:
        parser.error("--train_data is required (or use --quick_test, which makes sample data)")
    if args.max_steps == 0 or args.max_steps < -1:
        parser.error(
            f"--max_steps {args.max_steps}: give a number of optimizer steps >= 1, or -1 to train --num_epochs"
        )
    if args.max_steps == -1 and args.num_epochs <= 0:
        parser.error(f"--num_epochs {args.num_epochs}: must be above 0 (or give --max_steps)")


def train_config_from_args(args: argparse.Namespace):
    tiny_quick = args.quick_test and args.base_model is None
    base_model = args.base_model or ("tiny" if tiny_quick else BASE_MODEL)
    audio_tokenizer = args.audio_tokenizer or ("tiny" if tiny_quick else AUDIO_TOKENIZER)
    output_dir = args.output_dir
    if output_dir is None:
        if args.quick_test:
            import tempfile

            output_dir = tempfile.mkdtemp(prefix="higgs_lora_quick_test_")
        else:
            output_dir = TrainConfig.output_dir
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
    import sys

    from ..train.checkpoints import RunAlreadyFinished
    from ..train.faults import EXIT_INTERRUPTED, TrainingAborted, TrainingInterrupted, name_failing_rank
    from ..train.recipe import train
    from ..train.summary import is_rank_zero

    stages = ["data"]
    try:
        with name_failing_rank():
            cfg = train_config_from_args(args)
            out = train(cfg, on_stage=stages.append)
    except RunAlreadyFinished as done:
        if is_rank_zero():
            print(done)
        return 0
    except TrainingInterrupted as err:
        if is_rank_zero():
            print(str(err), file=sys.stderr)
        return EXIT_INTERRUPTED
    except TrainingAborted as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except Exception as err:
        if not args.quick_test:
            raise
        print(f"quick test FAILED at stage: {stages[-1]}: {type(err).__name__}: {err}", file=sys.stderr)
        return 2 if isinstance(err, (ValueError, FileNotFoundError)) else 1
    _finish_distributed()
    if is_rank_zero():  # under torchrun every process returns here
        print(f"adapter saved to {out}")
        if cfg.quick_test:
            print(f"environment OK (data, model, codec, training step, save; files in {out})")
    return 0


def _finish_distributed() -> None:
    """Under torchrun, after a finished run: wait for every rank, then destroy the process group while the
    interpreter is whole. Left to interpreter exit, gloo's threads can abort a process whose work is done
    ("terminate called without an active exception"), and NCCL warns that the group was not destroyed."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
