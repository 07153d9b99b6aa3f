"""`higgs-lora create-sample-data OUT.json`: a small canonical data set with real (espeak-ng) speech."""

from __future__ import annotations

import json
from pathlib import Path

from .common import add_system_prompt

NAME = "create-sample-data"
SUMMARY = "write a small sample set with real speech (offline)"


def add_arguments(p) -> None:
    p.add_argument("out_json", help="JSON file to write; clips are copied next to it")
    p.add_argument("--n_samples", type=int, default=None, help="keep only the first N samples (default: all 18)")
    p.add_argument("--overwrite", action="store_true", help="replace existing output")
    add_system_prompt(p)


def run(args) -> int:
    from ..data.sample_data import create_sample_data

    out = create_sample_data(
        args.out_json, n_samples=args.n_samples, system_prompt=args.system_prompt, overwrite=args.overwrite
    )
    n = len(json.loads(Path(out).read_text(encoding="utf-8")))
    print(f"wrote {n} samples to {out}")
    return 0
