"""`higgs-lora plan`: parameter counts, memory, FLOPs and step time of a run, from the model config alone."""

from __future__ import annotations

import argparse

from ..constants import FRAMES_PER_SECOND
from ..defaults import BASE_MODEL, DEFAULT_LORA_TARGETS

NAME = "plan"
SUMMARY = "memory and time plan of a training run, offline from the model config (exit 1 when it does not fit)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    from ..train.calibration import DEFAULT_MFU
    from ..train.gpus import GPUS

    p.add_argument(
        "--base_model",
        default=BASE_MODEL,
        help=f"folder with config.json, tiny, or a hub id (default: {BASE_MODEL}, whose config ships with the package)",
    )
    p.add_argument("--batch_size", type=int, default=4, help="samples per GPU per micro-batch")
    p.add_argument(
        "--seq_len",
        type=int,
        default=None,
        help="positions per sample after padding: text tokens + per clip frames + codebooks + 1 "
        f"({FRAMES_PER_SECOND} frames/s); "
        "default: the longest sample of --train_data, else 1024",
    )
    p.add_argument(
        "--train_data",
        default=None,
        help="size the sequences from this data file: every sample's length from its text and its audio "
        "files' durations (the longest sets the padded length of its batch)",
    )
    p.add_argument("--lora_r", type=int, default=64, help="LoRA rank (0: no adapters)")
    p.add_argument(
        "--lora_targets",
        nargs="+",
        default=DEFAULT_LORA_TARGETS,
        metavar="SUFFIX",
        help="module-name suffixes to adapt (default: attention, mlp, audio_mlp, both heads)",
    )
    p.add_argument("--gradient_accumulation_steps", type=int, default=1, help="micro-batches per optimizer step")
    p.add_argument(
        "--gpus", type=int, default=1, help="data-parallel GPUs (throughput scales with them; memory is per GPU)"
    )
    p.add_argument("--gpu", choices=list(GPUS), default="h200", help="card whose memory and peak FLOP/s to plan for")
    p.add_argument(
        "--gpu_memory_gb",
        type=float,
        default=None,
        help="plan for this much GPU memory (GiB, as nvidia-smi's MiB / 1024) instead of --gpu's: "
        "a shared or unlisted card (--gpu still sets the peak FLOP/s)",
    )
    p.add_argument("--use_gradient_checkpointing", action="store_true", help="plan with activation checkpointing")
    p.add_argument("--no_mixed_precision", action="store_true", help="fp32 weights and compute instead of bf16")
    p.add_argument(
        "--mfu",
        type=float,
        default=DEFAULT_MFU,
        help="assumed model FLOPs utilisation (default: the H200 figure under bf16 autocast, from train/calibration.py)",
    )


def run(args) -> int:
    from ..train.gpus import gpu_with_memory
    from ..train.model_shape import load_config_dict
    from ..train.plan import format_plan, make_plan

    config = load_config_dict(args.base_model)
    seq_len, data_lines = args.seq_len or 1024, []
    if args.train_data:
        from ..train.data_sizes import data_sizes

        sizes = data_sizes(args.train_data, args.base_model, config.get("audio_num_codebooks", 8))
        data_lines = sizes.describe()
        if args.seq_len is None:
            seq_len = sizes.longest().length
            data_lines.append(
                f"  planning with --seq_len {seq_len:,}: every sample of the longest batch padded to the longest"
            )
    plan = make_plan(
        config,
        args.batch_size,
        seq_len,
        args.lora_r,
        gpus=args.gpus,
        gpu=gpu_with_memory(args.gpu, args.gpu_memory_gb),
        checkpointing=args.use_gradient_checkpointing,
        targets=args.lora_targets,
        mfu=args.mfu,
        weight_bytes=4 if args.no_mixed_precision else 2,
        accumulation=args.gradient_accumulation_steps,
    )
    print("\n".join(data_lines + [format_plan(plan)]))
    return 1 if plan.warnings else 0  # scripts can test whether the plan fits
