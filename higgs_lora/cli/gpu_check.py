"""`higgs-lora gpu-check`: the released architecture (random weights, offline) through train, infer and check-alignment."""

from __future__ import annotations

NAME = "gpu-check"
SUMMARY = "measure training, inference and check-alignment at the released model's shape on one GPU (offline)"


def add_arguments(p) -> None:
    p.add_argument("--shape", choices=["released", "small"], default="released",
                   help="released: the 5.8B-parameter architecture with random weights (one GPU, < 5 min on an H100/H200); "
                        "small: the same phases at a scaled-down shape (CPU, a minute or two)")
    p.add_argument("--output", default=None, metavar="R.json", help="write the JSON report here")
    p.add_argument("--device", default=None, help="cuda, cuda:N or cpu (default: cuda if available)")
    p.add_argument("--mixed_precision", nargs="?", const="bf16", default="auto", choices=["auto", "bf16", "fp16", "no"],
                   help="precision scheme, as in training (auto: bf16 on CUDA, no on CPU)")
    p.add_argument("--steps", type=int, default=None,
                   help="training steps per phase (default: 10 released, 3 small; the first 2 are warm-up and not timed "
                        "when there are more)")
    p.add_argument("--phases", nargs="+", choices=["train", "infer", "alignment"], default=["train", "infer", "alignment"],
                   help="which phases to run")


def run(args) -> int:
    from ..bench.gpu_check import run_gpu_check

    report = run_gpu_check(args.shape, args.output, device=args.device, mixed_precision=args.mixed_precision,
                           steps=args.steps, phases=tuple(args.phases))
    failed = [r.get("phase") for r in report["train"] if "error" in r]
    failed += [k for k in ("infer", "alignment") if report.get(k) and "error" in report[k]]
    if report.get("alignment") and not report["alignment"].get("ok", False):
        failed.append("alignment")
    return 1 if failed else 0
