"""`higgs-lora validate DATA`: every invalid sample listed with its index and reason; exit 1 if any."""

from __future__ import annotations

from .common import add_system_prompt

NAME = "validate"
SUMMARY = "list invalid samples with index and reason; exit 1 if any"


def add_arguments(p) -> None:
    p.add_argument("data", help="ChatML JSON/JSONL file")
    p.add_argument("--for_inference", action="store_true", help="target audio not required (inference input)")
    add_system_prompt(p)


def run(args) -> int:
    from ..data.validate import validate_file

    report = validate_file(args.data, args.system_prompt, require_target=not args.for_inference)
    print(report.summary())
    return 0 if report.ok else 1
