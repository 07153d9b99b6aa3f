"""The GPU measurements the planner is calibrated on, each with the precision scheme it ran under, and
the recalibration from a `higgs-lora gpu-check` report.

One place for these facts: `train.step_estimate` takes DEFAULT_MFU and `train.memory_estimate`
ACTIVATION_CALIBRATION from here, the memory estimate's test the memory points; `docs/gpu.md` and
`docs/scaling.md` quote them.

Schemes (see `model/precision.py`):
- NO_AUTOCAST: bf16 base weights, fp32 LoRA, the forward without autocast. Superseded: it is what ran
  on 2026-11-27 because the default flags crashed under CUDA autocast then.
- BF16_AUTOCAST: bf16 base weights, fp32 LoRA, bf16 autocast with the audio embeddings cast back to
  bf16, the scheme training uses now.

Only the figures below were ever measured on a GPU (one NVIDIA H200, the reference harness
`gpu_check.py` that preceded `higgs-lora gpu-check`, project commit 5e2b3bd). Under the current scheme
there is a single figure (batch 4 without checkpointing, a bare training loop: 0.45 s/step, 55.5 GB);
the checkpointed and long-sample figures are no-autocast ones until a gpu-check report replaces them
(`recalibrate`).

Every figure below ran upstream's step: the text head at every position (B×T×128,256 logits, their
fp32 copies and gradients), before `train.heads` applied the heads to the labelled rows only. The
planner separates that term (`estimate_memory(..., full_logits=True)` reproduces these runs), so
ACTIVATION_CALIBRATION, fitted with it, stays a factor on the per-layer activations alone and carries
over to the step that runs now; a gpu-check report of the current step is marked `full_logits=False`.
"""

from __future__ import annotations

import json
import statistics
from dataclasses import asdict, dataclass
from pathlib import Path

from .gpus import GPUS
from .model_shape import ModelShape, released_config

NO_AUTOCAST = "no-autocast (bf16 weights, fp32 LoRA, autocast off; superseded)"
BF16_AUTOCAST = "bf16 autocast (bf16 weights, fp32 LoRA, audio embeddings cast back to bf16)"
REFERENCE_HARNESS = "reference harness, one NVIDIA H200, 2026-11-27, project commit 5e2b3bd"


@dataclass(frozen=True)
class Measurement:
    """One training configuration measured on a GPU at the released shape, LoRA r=64 on the default targets.

    `padded_length`: the longest sample of the run's data by `VoiceCloningDataset.lengths()` (the batch
    holding it sets the peak). `step_s` None where only memory was recorded."""

    what: str
    batch: int
    padded_length: int
    checkpointing: bool
    peak_gib: float
    step_s: float | None
    scheme: str
    source: str
    gpu: str = "h200"
    full_logits: bool = True  # upstream's step (text logits at every position), as every figure here ran


MEASUREMENTS = [
    Measurement("batch 4, ~3,670 non-pad tokens", 4, 1070, False, 63.0, 0.55, NO_AUTOCAST, REFERENCE_HARNESS),
    Measurement("batch 4, ~3,670 non-pad tokens", 4, 1070, True, 19.7, 0.84, NO_AUTOCAST, REFERENCE_HARNESS),
    Measurement("2 x (30 s ref + 30 s target), batch 2", 2, 2564, False, 101.8, None, NO_AUTOCAST, REFERENCE_HARNESS),
    Measurement("2 x (30 s ref + 30 s target), batch 2", 2, 2564, True, 21.2, None, NO_AUTOCAST, REFERENCE_HARNESS),
    Measurement("batch 16", 16, 1070, True, 40.8, 16 / 6.4, NO_AUTOCAST, REFERENCE_HARNESS),
    Measurement(
        "batch 4, ~3,670 non-pad tokens (bare loop)", 4, 1070, False, 55.5, 0.45, BF16_AUTOCAST, REFERENCE_HARNESS
    ),
]

# The planner's MFU: the one measurement under the current scheme (0.45 s/step at batch 4) by the
# planner's FLOP count, rounded (a test recomputes it). No-autocast runs gave 0.14 (checkpointing) to 0.17.
DEFAULT_MFU = 0.20
# Counted per-layer activation bytes overstate what backward really keeps (tensors shared between
# ops, temporaries freed early); this factor was fitted to the memory figures above, with their
# full-logits head term counted apart (it scales the per-layer term only).
ACTIVATION_CALIBRATION = 0.8
# (what, batch, padded length, checkpointing, peak GiB, full logits) for every memory figure, both
# schemes: the estimate of the step each ran is held within 25 % of each (tests/train/test_memory_estimate.py).
CALIBRATION_POINTS = [
    (m.what, m.batch, m.padded_length, m.checkpointing, m.peak_gib, m.full_logits) for m in MEASUREMENTS
]


def planner_mfu(m: Measurement, lora_r: int = 64) -> float:
    """The MFU the planner would need to predict `m.step_s` (its own FLOP count, the GPU's bf16 peak)."""
    from .step_estimate import estimate_step  # it imports DEFAULT_MFU from here

    if m.step_s is None:
        raise ValueError(f"{m.what}: no step time measured")
    shape = ModelShape.from_config(released_config())
    flops = estimate_step(
        shape, m.batch, m.padded_length, lora_r, checkpointing=m.checkpointing, mfu=1.0, full_logits=m.full_logits
    ).flops
    return flops / m.step_s / GPUS[m.gpu]["peak_flops"]


def _gpu_key(name: str) -> str | None:
    return next((key for key in GPUS if key in name.lower()), None)


def measurements_from_report(report: dict | str | Path) -> list[Measurement]:
    """The training phases of a gpu-check JSON report (`higgs-lora gpu-check --output R.json`) as
    measurements. Only a GPU run of the released shape calibrates the planner: anything else is a
    ValueError saying why."""
    if not isinstance(report, dict):
        report = json.loads(Path(report).read_text(encoding="utf-8"))
    device = report.get("device") or {}
    if report.get("shape") != "released":
        raise ValueError(
            f"gpu-check report of the {report.get('shape')!r} shape: only the released shape calibrates the planner"
        )
    gpu = _gpu_key(str(device.get("name", "")))
    if not str(device.get("device", "")).startswith("cuda") or gpu is None:
        raise ValueError(f"gpu-check report from {device.get('name')!r}: the planner knows no such GPU")
    from ..model.precision import Precision

    scheme = {"bf16": BF16_AUTOCAST, "no": NO_AUTOCAST}.get(
        report.get("precision"),
        Precision(report.get("precision", "?"), "cuda").describe()
        if report.get("precision") == "fp16"
        else str(report.get("precision")),
    )
    source = f"higgs-lora gpu-check on {device.get('name')}, torch {device.get('torch')}"
    out = []
    for row in report.get("train", []):
        if "error" in row or row.get("peak_memory_gb") is None:
            continue
        out.append(
            Measurement(
                f"gpu-check {row['phase']}",
                row["batch"],
                row["longest_sample"],
                row["checkpointing"],
                row["peak_memory_gb"],
                row["median_step_s"],
                scheme,
                source,
                gpu,
                full_logits=bool(row.get("full_logits", False)),
            )
        )  # gpu-check trains as `train` does
    if not out:
        raise ValueError("gpu-check report has no completed training phase")
    return out


@dataclass
class Recalibration:
    mfu: float
    measurements: list[Measurement]
    memory_ratio: list[float]  # planner estimate / measured peak, per measurement

    def to_json(self) -> dict:
        return {
            "mfu": self.mfu,
            "memory_ratio": self.memory_ratio,
            "measurements": [asdict(m) for m in self.measurements],
        }


def recalibrate(report: dict | str | Path) -> Recalibration:
    """What a gpu-check report says the planner's constants should be: the median planner MFU of its
    training phases, and how far the memory estimate is from each measured peak (ACTIVATION_CALIBRATION
    is refitted by hand from these ratios; a ratio outside 0.75-1.25 fails the planner's test once the
    measurement is added to MEASUREMENTS)."""
    from .memory_estimate import estimate_memory  # it imports ACTIVATION_CALIBRATION from here

    measurements = measurements_from_report(report)
    shape = ModelShape.from_config(released_config())
    ratios = [
        round(
            estimate_memory(
                shape, m.batch, m.padded_length, 64, checkpointing=m.checkpointing, full_logits=m.full_logits
            ).total
            / 2**30
            / m.peak_gib,
            3,
        )
        for m in measurements
    ]
    mfu = statistics.median(planner_mfu(m) for m in measurements)
    return Recalibration(round(mfu, 4), measurements, ratios)


if __name__ == "__main__":  # python -m higgs_lora.train.calibration R.json
    import sys

    print(json.dumps(recalibrate(sys.argv[1]).to_json(), indent=2))
