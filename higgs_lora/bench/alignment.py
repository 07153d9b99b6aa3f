"""gpu-check's alignment phase: `checks.run.run_checks` (prompt parity, label audit, teacher-forced overfit
through the training path) on the random-weight model."""

from __future__ import annotations

import time

from .random_model import load_check_model


def alignment_phase(ctx: dict) -> dict:
    from ..checks.run import run_checks
    from ..data.codes import TinyCodec

    device, precision = ctx["device"], ctx["precision"]
    model = load_check_model(
        ctx["model_dir"], device, precision.weights_dtype
    )  # the fit (train's recipe) adds the LoRA
    t0 = time.time()
    report = run_checks(
        ctx["short"],
        model,
        ctx["tokenizer"],
        TinyCodec(),
        mode="teacher_forced",
        precision=precision,
        log=ctx["log"],
        **ctx["plan"]["align"],
    )
    data = report.to_json()
    del model
    fit = next((c for c in report.checks if c.name.startswith("overfit")), None)
    settings = data.get("overfit") or {}
    return {
        "ok": data["ok"],
        "seconds": round(time.time() - t0, 1),
        "params": f"LoRA r={settings.get('lora_r')}",
        "settings": settings or None,
        "checks": {k: {"ok": v["ok"], "summary": v["summary"]} for k, v in data["checks"].items()},
        "history": fit.details.get("history") if fit else None,
    }
