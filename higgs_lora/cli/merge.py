"""`higgs-lora merge`: fold a LoRA adapter into the base model (in fp32, saved in the chosen dtype)."""

from __future__ import annotations

import sys

from ..defaults import BASE_MODEL

NAME = "merge"
SUMMARY = "fold a LoRA adapter into the base model"


def add_arguments(p) -> None:
    p.add_argument(
        "--base_model",
        default=None,
        help=f"hub id, folder or tiny (default: the training run's base model, else {BASE_MODEL})",
    )
    p.add_argument("--lora_path", required=True, help="training --output_dir (or a checkpoint folder)")
    p.add_argument("--output_path", required=True, help="folder for the merged model and tokenizer")
    p.add_argument(
        "--dtype",
        default="auto",
        choices=["auto", "bf16", "fp16", "fp32"],
        help="dtype of the saved weights; the merge itself runs in fp32 and the error this dtype puts on "
        "the adapter's update is printed (default: auto = as the base is stored, bf16 for the "
        "released model)",
    )
    p.add_argument("--overwrite", action="store_true", help="replace existing output")


def run(args) -> int:
    from ..infer.merge import WARN_UPDATE_ERROR, merge_adapter
    from ..infer.run_settings import resolve

    settings = resolve({"base_model": args.base_model}, args.lora_path, flag_names={"base_model": "--base_model"})
    settings.report()
    report = merge_adapter(
        settings["base_model"], args.lora_path, args.output_path, dtype=args.dtype, overwrite=args.overwrite
    )
    print(
        f"merged in fp32, saved as {report.dtype}: the {report.dtype} weights change the adapter's update by "
        f"{report.update_error:.2%} (relative, over {report.adapted_weights} adapted weights)"
    )
    if report.large:
        print(
            f"warning: more than {WARN_UPDATE_ERROR:.0%} of the adapter's update is lost to {report.dtype} rounding; "
            f"use --dtype fp32, or serve the adapter unmerged (infer --lora_path)",
            file=sys.stderr,
        )
    print(f"merged model saved to {report.output_path}")
    return 0
