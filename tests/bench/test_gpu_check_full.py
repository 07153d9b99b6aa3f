"""`gpu-check --full --shape small` on CPU: every user-facing command once, through the CLI, on the paths
CUDA takes where a CPU can run them (static KV cache, bf16 autocast). One run, read by several tests."""

import json

import pytest

from higgs_lora.bench.full import STEP_KEYS
from higgs_lora.cli import main

STEPS = [
    "train_bf16",
    "train_bf16_checkpointing",
    "train_fp16",
    "train_fp16_checkpointing",
    "check_alignment_teacher_forced",
    "check_alignment_regenerate",
    "infer_unmerged",
    "clone_unmerged",
    "merge",
    "infer_merged",
    "clone_merged",
    "serve_engine_merged",
    "eval",
    "torchrun_2_processes",
]
# check-alignment's regenerate judge used to crash on CUDA's static cache (issue 15).
REGENERATE = "check_alignment_regenerate"


@pytest.fixture(scope="module")
def full_run(tmp_path_factory):
    from higgs_lora.infer import caches

    tmp = tmp_path_factory.mktemp("full")
    built = []
    original = caches.build_caches

    def spy(config, lengths, device, dtype):
        built.append(device.type)
        return original(config, lengths, device, dtype)

    mp = pytest.MonkeyPatch()
    mp.setenv("CUDA_VISIBLE_DEVICES", "")  # gpu-check narrows it; restored after
    mp.setattr(caches, "build_caches", spy)
    try:
        rc = main(
            [
                "gpu-check",
                "--shape",
                "small",
                "--device",
                "cpu",
                "--full",
                "--phases",
                "infer",
                "--steps",
                "2",
                "--output",
                str(tmp / "r.json"),
                "--workdir",
                str(tmp / "work"),
            ]
        )
    finally:
        mp.undo()
    report = json.loads((tmp / "r.json").read_text(encoding="utf-8"))
    return rc, report, built, tmp / "work"


def test_full_runs_every_command_once_and_records_each_step(full_run):
    rc, report, built, work = full_run
    assert report["device"]["name"] == "cpu" and report["cuda_choices_on_cpu"] is True
    assert report["precision"] == "bf16"  # CUDA's default scheme, forced on the CPU
    assert set(report) >= {"train", "infer", "alignment", "steps", "device"}
    steps = {s["name"]: s for s in report["steps"]}
    assert [s["name"] for s in report["steps"]] == STEPS
    for s in report["steps"]:
        assert set(s) >= set(STEP_KEYS) and s["peak_memory_gb"] is None  # no CUDA counter on a CPU
    for name in ("train_fp16", "train_fp16_checkpointing"):  # Trainer's fp16 loss scaling needs CUDA
        assert steps[name]["skipped"] and "needs CUDA" in steps[name]["error"]
    failed = {n: s["error"] for n, s in steps.items() if not s["ok"] and not s.get("skipped")}
    assert not failed and rc == 0
    ran = [s for n, s in steps.items() if not s.get("skipped")]
    assert all(s["seconds"] > 0 for s in ran)
    # the outputs each command promises exist
    assert (work / "full" / "train_bf16" / "adapter_config.json").is_file()
    assert (work / "full" / "merged" / "config.json").is_file()
    assert (work / "full" / "clone_unmerged.wav").is_file() and (work / "full" / "clone_merged.wav").is_file()
    assert json.loads((work / "full" / "infer_unmerged" / "results.json").read_text())
    assert (work / "full" / "eval" / "report.md").is_file()
    assert (work / "full" / "train_ddp" / "adapter_config.json").is_file()
    # the engine took the static cache, as on CUDA, in every command that generates
    assert len(built) >= 6 and set(built) == {"cpu"}
    # and so did the measured inference: bf16 base, unmerged fp32 adapter, static cache, decode timed apart
    infer = report["infer"]
    assert (infer["cache"], infer["base_dtype"], infer["adapter"], infer["adapter_dtype"]) == (
        "static",
        "bfloat16",
        "unmerged",
        "float32",
    )
    assert infer["cuda_graphs"] is False and infer["decode_seconds"] > 0 and report["attention"] == "sdpa"


def test_a_failing_step_is_recorded_and_the_later_steps_still_run(tmp_path):
    from higgs_lora.bench.full import Steps

    def crash():
        raise RuntimeError("index_copy_(): self and source expected to have the same dtype")

    steps = Steps("cpu", log=lambda *_: None)
    steps.run("first", crash)
    steps.run("argparse_exit", lambda: (_ for _ in ()).throw(SystemExit(2)))
    steps.run("needs_output", lambda: 0, needs=(tmp_path / "missing",))
    steps.run("last", lambda: 0)
    first, exited, needs, last = steps.rows
    assert not first["ok"] and "index_copy_" in first["error"] and "RuntimeError" in first["traceback"]
    assert not exited["ok"] and "SystemExit" in exited["error"]
    assert needs["skipped"] and "missing" in needs["error"] and not needs["ok"]
    assert last["ok"] and last["error"] is None


def test_check_alignment_regenerate_runs_on_the_static_cache(full_run):
    rc, report, _, _ = full_run
    step = next(s for s in report["steps"] if s["name"] == REGENERATE)
    assert step["ok"], step["error"]
    assert rc == 0
