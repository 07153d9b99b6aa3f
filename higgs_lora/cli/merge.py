"""`higgs-lora merge`: fold a LoRA adapter into the base model."""

from __future__ import annotations

from ..defaults import BASE_MODEL

NAME = "merge"
SUMMARY = "fold a LoRA adapter into the base model"


def add_arguments(p) -> None:
    p.add_argument("--base_model", default=BASE_MODEL, help=f"hub id, folder or tiny (default: {BASE_MODEL})")
    p.add_argument("--lora_path", required=True, help="training --output_dir (or a checkpoint folder)")
    p.add_argument("--output_path", required=True, help="folder for the merged model and tokenizer")
    p.add_argument("--dtype", default="auto", help="auto (as stored), bf16, fp16, fp32")
    p.add_argument("--overwrite", action="store_true", help="replace existing output")


def run(args) -> int:
    from ..infer.merge import merge_adapter

    out = merge_adapter(args.base_model, args.lora_path, args.output_path, dtype=args.dtype, overwrite=args.overwrite)
    print(f"merged model saved to {out}")
    return 0
