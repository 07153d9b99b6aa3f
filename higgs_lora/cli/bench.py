"""`higgs-lora bench`: speed and memory ratios of the training step on this machine's CPU (offline)."""

from __future__ import annotations

NAME = "bench"
SUMMARY = "measure the training step's memory, FLOPs, casts and syncs against the full-logits step, on CPU (offline)"
DESCRIPTION = (
    SUMMARY + ". Also the code cache against live encoding and the padding of length-bucketed batches. "
    "Every figure is a ratio of two paths measured in the same run, written with its inputs; a few minutes."
)


def add_arguments(p) -> None:
    p.add_argument("--output", default=None, metavar="BENCH.json", help="write the JSON report here")
    p.add_argument(
        "--shape",
        choices=["bench", "test"],
        default="bench",
        help="bench: the released vocabulary and audio heads at hidden 512, 6 layers (a few minutes); "
        "test: a toy shape that only checks the command runs (seconds)",
    )
    p.add_argument(
        "--repeats", type=int, default=5, help="micro-steps timed for trainer_overhead_ratio (fastest counts)"
    )


def run(args) -> int:
    from ..bench.run import run_bench, table

    report = run_bench(args.shape, args.output, repeats=args.repeats)
    print(table(report))
    return 0 if all(g["met"] is not False for g in report["goals"].values()) else 1
