"""`higgs-lora gpu-check`: the released architecture (random weights, offline) through train, infer and check-alignment;
`--full` runs every user-facing command once (bench/full.py)."""

from __future__ import annotations

import os

from .common import add_mixed_precision

NAME = "gpu-check"
SUMMARY = "measure training, inference and check-alignment at the released model's shape on one GPU (offline)"


def add_arguments(p) -> None:
    p.add_argument(
        "--shape",
        choices=["released", "small"],
        default="released",
        help="released: the 5.8B-parameter architecture with random weights (one GPU, < 5 min on an H100/H200); "
        "small: the same phases at a scaled-down shape (CPU, a minute or two)",
    )
    p.add_argument("--output", default=None, metavar="R.json", help="write the JSON report here")
    p.add_argument("--device", default=None, help="cuda, cuda:N or cpu (default: cuda if available)")
    add_mixed_precision(p, "precision scheme, as in training (auto: bf16 on CUDA, no on CPU)")
    p.add_argument(
        "--steps",
        type=int,
        default=None,
        help="training steps per phase (default: 10 released, 3 small; the first 2 are warm-up and not timed "
        "when there are more)",
    )
    p.add_argument(
        "--phases",
        nargs="*",
        choices=["train", "infer", "alignment"],
        default=["train", "infer", "alignment"],
        help="which measured phases to run (none: `--phases` alone, e.g. with --full)",
    )
    p.add_argument(
        "--workdir",
        default=None,
        metavar="DIR",
        help="keep the random-weight model folder, data, adapters and outputs here, so the commands train "
        "prints next can be run afterwards (default: a temporary folder, removed at the end)",
    )
    p.add_argument(
        "--full",
        action="store_true",
        help="also run every command a GPU user runs, once each, through the CLI: train bf16/fp16 with and "
        "without checkpointing, check-alignment in both modes, infer and clone with an unmerged adapter "
        "and merged, merge + boson's serve engine, eval on two samples, a 2-process torchrun; the JSON "
        'gets "steps". On a CPU (--shape small) CUDA\'s choices are forced where a CPU can run them '
        "(static KV cache, bf16 autocast)",
    )


def one_visible_gpu(device: str | None, environ=os.environ) -> str | None:
    """Show this process only the GPU it measures, and return the device to use then.

    Outside torchrun, transformers' Trainer wraps the model in nn.DataParallel over every visible GPU,
    so on an 8-GPU node the train phase would split each batch across GPUs and time that instead.
    Must run before torch initialises CUDA (hence here, before the heavy imports).
    """
    if device is not None and not device.startswith("cuda"):
        return device
    index = int(device.split(":", 1)[1]) if device and ":" in device else 0
    visible = [d.strip() for d in environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if d.strip()]
    if visible and index >= len(visible):
        raise ValueError(
            f"--device {device}: CUDA_VISIBLE_DEVICES={environ['CUDA_VISIBLE_DEVICES']} shows {len(visible)} GPU(s)"
        )
    environ["CUDA_VISIBLE_DEVICES"] = visible[index] if visible else str(index)
    return None if device is None else "cuda"


def run(args) -> int:
    args.device = one_visible_gpu(args.device)
    from ..bench.gpu_check import run_gpu_check

    report = run_gpu_check(
        args.shape,
        args.output,
        device=args.device,
        mixed_precision=args.mixed_precision,
        steps=args.steps,
        phases=tuple(args.phases),
        full=args.full,
        workdir=args.workdir,
    )
    failed = [r.get("phase") for r in report["train"] if "error" in r]
    failed += [s["name"] for s in report.get("steps", []) if not s["ok"] and not s.get("skipped")]
    failed += [k for k in ("infer", "alignment") if report.get(k) and "error" in report[k]]
    if report.get("alignment") and not report["alignment"].get("ok", False):
        failed.append("alignment")
    return 1 if failed else 0
