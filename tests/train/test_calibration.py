"""The planner's GPU calibration: one table of measurements, each with its precision scheme, and the
recalibration from a gpu-check report (the fixture is a real `gpu-check --full --shape small` CPU report,
the format docs/gpu.md cites)."""

import copy
import json
from pathlib import Path

import pytest

from higgs_lora.train import calibration as C
from higgs_lora.train import memory_estimate, step_estimate

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "gpu_check_report_small_cpu.json"


def test_every_figure_says_its_scheme_and_the_planner_uses_this_table():
    assert {m.scheme for m in C.MEASUREMENTS} == {C.NO_AUTOCAST, C.BF16_AUTOCAST}
    assert step_estimate.DEFAULT_MFU is C.DEFAULT_MFU
    assert memory_estimate.ACTIVATION_CALIBRATION is C.ACTIVATION_CALIBRATION
    assert len(C.CALIBRATION_POINTS) == len(C.MEASUREMENTS)


def test_default_mfu_comes_from_the_current_scheme_not_the_superseded_one():
    current = [m for m in C.MEASUREMENTS if m.scheme == C.BF16_AUTOCAST and m.step_s]
    superseded = [
        m for m in C.MEASUREMENTS if m.scheme == C.NO_AUTOCAST and m.step_s and m.batch == 4 and not m.checkpointing
    ]
    assert current and superseded
    assert C.DEFAULT_MFU == round(C.planner_mfu(current[0]), 2)
    assert abs(C.DEFAULT_MFU - C.planner_mfu(superseded[0])) > 0.02  # the old default (0.15) followed these


def test_a_cpu_report_does_not_recalibrate_the_planner():
    report = json.loads(FIXTURE.read_text(encoding="utf-8"))
    assert report["device"]["name"] == "cpu" and report["train"]  # what gpu-check writes, training phases included
    with pytest.raises(ValueError, match="only the released shape"):
        C.recalibrate(FIXTURE)
    released = dict(report, shape="released")
    with pytest.raises(ValueError, match="knows no such GPU"):
        C.recalibrate(released)


def _as_gpu_report(measurement: C.Measurement) -> dict:
    """The fixture's format, its training rows replaced by one measurement as gpu-check would report it."""
    report = copy.deepcopy(json.loads(FIXTURE.read_text(encoding="utf-8")))
    report.update(
        shape="released",
        precision="bf16",
        device={"device": "cuda", "name": "NVIDIA H200", "torch": "x", "memory_gb": 139.8},
    )
    row = dict(
        report["train"][0],
        phase="batch4",
        batch=measurement.batch,
        checkpointing=measurement.checkpointing,
        longest_sample=measurement.padded_length,
        median_step_s=measurement.step_s,
        peak_memory_gb=measurement.peak_gib,
        full_logits=measurement.full_logits,
    )
    report["train"] = [row, {"phase": "batch4_checkpointing", "ok": False, "error": "OutOfMemoryError"}]
    return report


def test_recalibration_reads_a_gpu_check_report_and_agrees_with_the_table(tmp_path):
    current = next(m for m in C.MEASUREMENTS if m.scheme == C.BF16_AUTOCAST)
    path = tmp_path / "r.json"
    path.write_text(json.dumps(_as_gpu_report(current)), encoding="utf-8")
    result = C.recalibrate(path)
    assert [m.scheme for m in result.measurements] == [C.BF16_AUTOCAST]  # the failed phase is left out
    assert result.mfu == pytest.approx(C.planner_mfu(current), abs=1e-4)
    assert round(result.mfu, 2) == C.DEFAULT_MFU
    m = result.measurements[0]
    assert (m.batch, m.padded_length, m.checkpointing, m.peak_gib, m.gpu) == (4, 1070, False, 55.5, "h200")
    assert 0.75 < result.memory_ratio[0] < 1.25  # the planner's memory estimate holds for this figure
    assert m.full_logits  # measured on upstream's step: compared with that step's estimate
    assert "gpu-check on NVIDIA H200" in m.source
