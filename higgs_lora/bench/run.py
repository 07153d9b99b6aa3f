"""`higgs-lora bench`: the speed and memory ratios of a training step, measured on this machine's CPU.

Each figure is a ratio of two paths measured in the same run, with its inputs next to it in the JSON:
the step's costs (`bench.step`: today's full-logits step against the project's), the code cache
against live encoding and the padding of length-bucketed batches (`bench.pipeline`).
"""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path

# name: (comparison, bound). The goals; a figure that misses one is reported, never hidden.
GOALS = {
    "logits_memory_ratio": (">=", 100),
    "step_peak_memory_ratio": (">=", 4),
    "step_flops_ratio": (">=", 3),
    "cast_bytes_ratio": (">=", 3),
    "cache_speedup": (">=", 500),
    "nonpad_fraction_bucketed": (">=", 0.90),
    "trainer_overhead_ratio": ("<=", 1.10),
    "checkpointing_memory_ratio": (">=", 5),
}
LOSS_TOLERANCE = 1e-4


def machine() -> dict:
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores_visible": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
    }


def _met(value, goal) -> bool | None:
    if value is None:
        return None
    op, bound = goal
    return value >= bound if op == ">=" else value <= bound


def run_bench(shape: str = "bench", output: str | Path | None = None, repeats: int = 5) -> dict:
    from .pipeline import cache_speedup, nonpad_fraction_bucketed
    from .step import run_step_bench

    started = time.time()
    report = {"machine": machine(), "shape": shape}
    step = run_step_bench(shape, repeats=repeats)
    report["step_inputs"] = step.pop("inputs")
    report["today_step"], report["project_step"] = step.pop("today"), step.pop("project")
    report.update(step)
    report["cache_speedup"] = cache_speedup(shape)
    report["nonpad_fraction_bucketed"] = nonpad_fraction_bucketed()
    syncs = report["host_syncs_per_microstep"]
    loss = report["step_flops_ratio"]
    report["goals"] = {
        name: {"value": report[name]["value"], "goal": f"{op} {bound}", "met": _met(report[name]["value"], (op, bound))}
        for name, (op, bound) in GOALS.items()
    }
    report["goals"]["same_loss"] = {
        "value": loss["loss_difference"],
        "goal": f"<= {LOSS_TOLERANCE}",
        "met": loss["loss_difference"] <= LOSS_TOLERANCE,
    }
    report["goals"]["host_syncs_project_code"] = {
        "value": syncs["project_code"],
        "goal": "== 0",
        "met": syncs["project_code"] == 0,
    }
    report["goals"]["host_syncs_model_code_per_layer"] = {
        "value": syncs["model_code_per_layer"],
        "goal": "<= 2",
        "met": syncs["model_code_per_layer"] <= 2,
    }
    report["wall_s"] = round(time.time() - started, 1)
    if output:
        Path(output).write_text(json.dumps(report, indent=2), encoding="utf-8")
    return report


def table(report: dict) -> str:
    rows = ["| figure | value | goal | met |", "|---|---|---|---|"]
    for name, g in report["goals"].items():
        met = {True: "yes", False: "**no**", None: "-"}[g["met"]]
        rows.append(f"| `{name}` | {g['value']} | {g['goal']} | {met} |")
    m = report["machine"]
    rows.append(
        f"\n{m['cpu']}, {m['cores_visible']} cores visible, {m['torch_threads']} torch threads, torch {m['torch']}; "
        f"{report['wall_s']} s"
    )
    return "\n".join(rows)
