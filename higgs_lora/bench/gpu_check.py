"""gpu-check: the released architecture (random weights) through this project's own code on one GPU.

Offline: the model is the released configuration shipped in this package (`released_config.json`,
5,771,283,456 parameters: Llama-3.2-3B backbone with DualFFN on all 28 layers, 8 codebooks) with
random weights, written once as a model folder and loaded through `load_model` as a user's model is
(`bench/random_model.py`: same attention implementation, reported in the JSON); the tokenizer is the
tiny kit's byte-level one with the config's special-token ids remapped onto it, so compute and memory
per token match the real model. Phases, all through the project's code paths:

- train: `train.recipe.train` (Trainer, precision scheme, LoRA r=64) at batch 4 without and with
  activation checkpointing, and on a long pair (batch 2, each 30 s reference + 30 s target):
  median step time, non-pad tokens/s, samples/s, peak memory over the timed steps, MFU estimate;
- infer: `infer.engine.VoiceCloner` as users serve it: base + an unmerged fp32 LoRA adapter, the
  engine's cache choice (static KV cache + CUDA graphs on CUDA), the real codec class (random weights)
  on CUDA; generated columns/s, real-time factor, and codec decode time reported separately;
- alignment: `checks.run.run_checks` (prompt parity, label audit, teacher-forced overfit through the
  training path).

The phases live in bench/training.py, bench/inference.py and bench/alignment.py, the FLOP model in
bench/flops.py, the printed table in bench/report.py; this module runs them and writes the JSON report.

`shape="small"` runs the same phases at a scaled-down shape (CPU, a minute or two).
`force_cuda_choices=True` makes a CPU run take the paths CUDA takes where a CPU can run them (static
KV cache, bf16 autocast), so a CPU test exercises them. `bench/full.py` (`gpu-check --full`) drives the
CLI commands themselves.
"""

from __future__ import annotations

import contextlib
import gc
import json
import tempfile
import time
import traceback
from pathlib import Path

import torch

from ..constants import peak_flops_for
from ..model import tiny
from ..model.precision import Precision, resolve_precision
from .alignment import alignment_phase
from .flops import FLOP_FORMULA, parameter_groups
from .random_model import SHAPES, build_config, build_meta_model, write_model_folder
from .report import device_info, table
from .samples import make_samples, write_chatml
from .training import train_phase

# Per shape: clip lengths (s), text length (chars), steps, generated columns, alignment fit budget.
PLANS = {
    "released": dict(
        normal=(16, (6, 10), (6, 14), (60, 160)),
        long=(2, (30, 30), (30, 30), (300, 400)),
        short=(2, (3, 4), (2, 3), (20, 40)),
        steps=10,
        long_steps=4,
        columns=300,
        workers=2,
        align=dict(max_steps=100, check_every=5),
    ),
    "small": dict(
        normal=(4, (1, 2), (1, 2), (10, 30)),
        long=(2, (4, 4), (4, 4), (40, 60)),
        short=(2, (1, 1.5), (1, 1.5), (10, 20)),
        steps=3,
        long_steps=2,
        columns=24,
        workers=0,
        align=dict(max_steps=60, check_every=10),
    ),
}


def run_gpu_check(
    shape: str = "released",
    output: str | Path | None = None,
    device: str | None = None,
    mixed_precision: str | None = None,
    steps: int | None = None,
    phases=("train", "infer", "alignment"),
    full: bool = False,
    cuda_choices: bool | None = None,
    workdir: str | Path | None = None,
    log=print,
) -> dict:
    """Run the phases (and with `full`, every CLI command as a step, see `bench/full.py`), print a table,
    write the JSON report to `output` (if given) and return it.

    `cuda_choices` (default: with `full` on a CPU): take CUDA's paths where a CPU can run them (static KV
    cache, bf16 autocast when no --mixed_precision is given). `workdir`: keep the model folder, data,
    adapters and outputs there (by default a temporary folder, removed at the end)."""
    if shape not in SHAPES:
        raise ValueError(f"--shape {shape!r}: use one of {', '.join(SHAPES)}")
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    if shape == "released" and not device.startswith("cuda"):
        raise ValueError(
            "gpu-check --shape released needs a CUDA GPU (the model is 5.8B parameters); "
            "--shape small runs the same phases on CPU"
        )
    t_start = time.time()
    plan = dict(PLANS[shape])
    if steps:
        plan.update(steps=steps, long_steps=min(steps, plan["long_steps"]))
    cuda = device.startswith("cuda")
    if cuda_choices is None:
        cuda_choices = full and not cuda
    if cuda_choices and not cuda and mixed_precision in (None, "auto"):
        mixed_precision = "bf16"  # CUDA's default scheme; a CPU runs bf16 autocast too
    precision: Precision = resolve_precision(mixed_precision, device)
    config = build_config(shape)
    info = device_info(device)
    report: dict = {
        "shape": shape,
        "device": info,
        "precision": precision.name,
        "flop_formula": FLOP_FORMULA,
        "peak_flops": peak_flops_for(info.get("name", "")),
        "cuda_choices_on_cpu": bool(cuda_choices and not cuda),
        "attention": None,
        "train": [],
        "infer": None,
        "alignment": None,
    }
    with (
        contextlib.nullcontext(workdir) if workdir else tempfile.TemporaryDirectory(prefix="higgs_lora_gpu_check_")
    ) as tmp:
        work = Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        ctx = {
            "device": device,
            "precision": precision,
            "config": config,
            "tokenizer": tiny.build_tokenizer(),
            "workdir": work,
            "workers": plan["workers"],
            "peak_flops": report["peak_flops"],
            "plan": plan,
            "log": log,
            "cache": "static" if cuda_choices else "auto",
        }
        ctx["groups"] = parameter_groups(build_meta_model(config))
        report["parameters"] = ctx["groups"]
        log(f"gpu-check: {shape} shape, {ctx['groups']['total']:,} parameters, {precision.name}, on {info.get('name')}")
        t0 = time.time()
        ctx["model_dir"] = write_model_folder(config, work / "model", device, precision.weights_dtype)
        report["model_folder_s"] = round(time.time() - t0, 1)
        normal = write_chatml(make_samples(work, "n", plan["normal"], 0), work / "normal.json")
        long = write_chatml(make_samples(work, "l", plan["long"], 1), work / "long.json")
        ctx["short"] = make_samples(work, "s", plan["short"], 2)

        def attempt(label, fn):
            log(f"-- {label}")
            try:
                return fn()
            except Exception as e:  # one failed phase (e.g. out of memory) must not hide the others
                if device.startswith("cuda"):
                    torch.cuda.empty_cache()
                return {
                    "phase": label,
                    "ok": False,
                    "error": f"{type(e).__name__}: {e}"[:2000],
                    "traceback": traceback.format_exc()[-3000:],
                }
            finally:
                gc.collect()

        if "train" in phases:
            for name, data, bs, n, ckpt in (
                ("batch4", normal, 4, plan["steps"], False),
                ("batch4_checkpointing", normal, 4, plan["steps"], True),
                ("long_pair_checkpointing", long, 2, plan["long_steps"], True),
            ):
                report["train"].append(attempt(name, lambda: train_phase(name, ctx, data, bs, n, ckpt)))
        if "infer" in phases:
            from .inference import infer_phase

            report["infer"] = attempt("infer", lambda: infer_phase(ctx, plan["columns"]))
        if "alignment" in phases:
            report["alignment"] = attempt("alignment", lambda: alignment_phase(ctx))
        if full:
            from .full import run_steps

            report["steps"] = run_steps(
                {
                    **ctx,
                    "normal": normal,
                    "columns": plan["columns"],
                    "steps": min(plan["steps"], 3),
                    "cuda_choices": cuda_choices,
                },
                log=log,
            )
        measured = [r for r in [*report["train"], report["infer"] or {}] if r.get("attention")]
        report["attention"] = measured[0]["attention"] if measured else None
    report["total_s"] = round(time.time() - t_start, 1)
    log(table(report))
    if output:
        Path(output).parent.mkdir(parents=True, exist_ok=True)
        Path(output).write_text(json.dumps(report, indent=2, ensure_ascii=False, default=str), encoding="utf-8")
        log(f"report written to {output}")
    return report
