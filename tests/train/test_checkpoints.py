"""Atomic checkpoints, `latest`, and the refusal to start a fresh run on top of an earlier one."""

import json

import pytest
import torch
from safetensors.torch import load_file
from transformers import Trainer

from higgs_lora.train import checkpoints
from higgs_lora.train.checkpoints import (
    MARKER,
    check_output_dir,
    incomplete_reason,
    latest_checkpoint,
    resolve_resume,
)
from higgs_lora.train.recipe import TrainConfig, train

TINY = dict(
    base_model="tiny",
    audio_tokenizer="tiny",
    batch_size=2,
    gradient_accumulation_steps=1,
    logging_steps=1,
    dataloader_num_workers=0,
    report_to="none",
)


def _fake_checkpoint(folder, step, complete=True):
    ckpt = folder / f"checkpoint-{step}"
    ckpt.mkdir(parents=True)
    for name in ("trainer_state.json", "adapter_model.safetensors", "optimizer.pt", "scheduler.pt"):
        (ckpt / name).write_text("x" * step)
    if complete:
        checkpoints.write_marker(ckpt, step)
    return ckpt


def _steps(folder):
    return [json.loads(line)["step"] for line in (folder / "metrics.jsonl").read_text().splitlines()]


def _assert_same_adapter(a_path, b_path, atol=1e-6):
    a, b = load_file(a_path), load_file(b_path)
    assert a.keys() == b.keys()
    worst = max(float((a[k] - b[k]).abs().max()) for k in a)
    assert worst <= atol, worst


# --- latest and completeness ------------------------------------------------------------------


def test_latest_is_the_newest_complete_checkpoint(tmp_path):
    _fake_checkpoint(tmp_path, 2)
    _fake_checkpoint(tmp_path, 10)
    _fake_checkpoint(tmp_path, 11, complete=False)  # a save that never finished
    (tmp_path / "checkpoint-12").mkdir()  # empty
    assert latest_checkpoint(tmp_path) == tmp_path / "checkpoint-10"  # numeric, not string order
    assert resolve_resume("latest", tmp_path) == str(tmp_path / "checkpoint-10")


def test_a_truncated_file_makes_a_checkpoint_incomplete(tmp_path):
    ckpt = _fake_checkpoint(tmp_path, 3)
    assert incomplete_reason(ckpt) is None
    (ckpt / "optimizer.pt").write_text("x")  # cut short after the marker was written
    assert "optimizer.pt" in incomplete_reason(ckpt)
    assert latest_checkpoint(tmp_path) is None


def test_latest_without_a_checkpoint_says_so(tmp_path):
    with pytest.raises(ValueError, match="no complete checkpoint"):
        resolve_resume("latest", tmp_path)
    _fake_checkpoint(tmp_path, 4, complete=False)
    with pytest.raises(ValueError, match="incomplete: checkpoint-4"):
        resolve_resume("latest", tmp_path)


def test_an_explicit_path_must_be_a_checkpoint(tmp_path):
    with pytest.raises(ValueError, match="not a complete checkpoint"):
        resolve_resume(str(tmp_path / "nowhere"), tmp_path)
    ckpt = _fake_checkpoint(tmp_path, 5, complete=False)
    (ckpt / "scheduler.pt").unlink()
    with pytest.raises(ValueError, match="scheduler.pt"):
        resolve_resume(str(ckpt), tmp_path)
    # a checkpoint from plain Trainer (no marker) is accepted when Trainer's files are all there
    plain = _fake_checkpoint(tmp_path, 6, complete=False)
    assert resolve_resume(str(plain), tmp_path) == str(plain)


def test_fresh_run_into_an_earlier_run_is_refused_and_nothing_deleted(data4, tmp_path, capsys):
    from higgs_lora.cli import main

    out = tmp_path / "out"
    ckpt = _fake_checkpoint(out, 2)
    (out / "metrics.jsonl").write_text('{"step": 1}\n')
    before = sorted(p.relative_to(out) for p in out.rglob("*"))
    rc = main(
        [
            "train",
            "--train_data",
            str(data4),
            "--output_dir",
            str(out),
            "--base_model",
            "tiny",
            "--audio_tokenizer",
            "tiny",
            "--max_steps",
            "1",
            "--report_to",
            "none",
        ]
    )
    assert rc == 2
    err = capsys.readouterr().err
    assert "already holds a training run" in err and "--overwrite_output_dir" in err and "latest" in err
    assert "Traceback" not in err
    assert sorted(p.relative_to(out) for p in out.rglob("*")) == before and ckpt.is_dir()
    # an empty folder, or one holding only data, is fine
    check_output_dir(tmp_path / "new", overwrite=False, resuming=False)
    (tmp_path / "data_only").mkdir()
    (tmp_path / "data_only" / "d.json").write_text("[]")
    check_output_dir(tmp_path / "data_only", overwrite=False, resuming=False)


# --- the recipe: resume by name, atomic saves --------------------------------------------------


@pytest.fixture(scope="module")
def reference(data4, tmp_path_factory):
    """An uninterrupted four-step run, a checkpoint every step."""
    out = tmp_path_factory.mktemp("ckpt_ref") / "out"
    train(
        TrainConfig(train_data=str(data4), output_dir=str(out), max_steps=4, save_steps=1, save_total_limit=5, **TINY)
    )
    return out


def test_checkpoints_carry_a_marker_and_no_staging_is_left(reference):
    for step in (1, 2, 3, 4):
        assert incomplete_reason(reference / f"checkpoint-{step}") is None
        marker = json.loads((reference / f"checkpoint-{step}" / MARKER).read_text())
        assert marker["global_step"] == step and "optimizer.pt" in marker["files"]
    assert not list(reference.glob(".staging-*"))


def test_resume_latest_after_a_kill_continues_metrics_and_matches(reference, data4, tmp_path):
    # What a kill after step 3's log line but before its checkpoint leaves behind.
    out = tmp_path / "out"
    out.mkdir()
    import shutil

    shutil.copytree(reference / "checkpoint-2", out / "checkpoint-2")
    lines = (reference / "metrics.jsonl").read_text().splitlines()[:3]
    (out / "metrics.jsonl").write_text("\n".join(lines) + "\n" + '{"step": 4, "lo')  # torn last line
    train(
        TrainConfig(
            train_data=str(data4),
            output_dir=str(out),
            max_steps=4,
            save_steps=1,
            save_total_limit=5,
            resume_from_checkpoint="latest",
            **TINY,
        )
    )
    assert _steps(out) == [1, 2, 3, 4]  # no gap, no repeat, torn line gone
    _assert_same_adapter(reference / "adapter_model.safetensors", out / "adapter_model.safetensors")


def test_failure_while_writing_a_checkpoint_keeps_the_previous_one(reference, data4, tmp_path, monkeypatch):
    original = Trainer._save_optimizer_and_scheduler

    def disk_full_at_step_3(self, output_dir):
        if self.state.global_step == 3:
            raise OSError(28, "No space left on device")
        return original(self, output_dir)

    monkeypatch.setattr(Trainer, "_save_optimizer_and_scheduler", disk_full_at_step_3)
    out = tmp_path / "out"
    cfg = dict(train_data=str(data4), output_dir=str(out), max_steps=4, save_steps=1, save_total_limit=1, **TINY)
    with pytest.raises(OSError, match="No space left"):
        train(TrainConfig(**cfg))
    # the half-written checkpoint-3 never took the name; rotation did not delete checkpoint-2 for it
    assert not (out / "checkpoint-3").exists()
    assert [p.name for p in checkpoints.list_checkpoints(out)] == ["checkpoint-2"]
    assert latest_checkpoint(out) == out / "checkpoint-2"
    weights = load_file(out / "checkpoint-2" / "adapter_model.safetensors")
    assert weights and all(torch.isfinite(v).all() for v in weights.values())
    monkeypatch.setattr(Trainer, "_save_optimizer_and_scheduler", original)
    train(TrainConfig(resume_from_checkpoint="latest", **cfg))
    assert not list(out.glob(".staging-*"))  # the crashed save's leftovers are cleaned up
    assert _steps(out) == [1, 2, 3, 4]
    _assert_same_adapter(reference / "adapter_model.safetensors", out / "adapter_model.safetensors")


def test_overwrite_output_dir_starts_over(reference, data4, tmp_path):
    import shutil

    out = tmp_path / "out"
    shutil.copytree(reference, out)
    train(
        TrainConfig(
            train_data=str(data4), output_dir=str(out), max_steps=1, save_steps=1, overwrite_output_dir=True, **TINY
        )
    )
    # the old run's later checkpoints are gone, so `latest` cannot pick them up; metrics restart
    assert [p.name for p in checkpoints.list_checkpoints(out)] == ["checkpoint-1"]
    assert _steps(out) == [1]


def test_resume_loads_nothing_through_pickle_without_weights_only(reference, data4, tmp_path, monkeypatch):
    """Safety: every torch.load during a resume is weights-only (torch >= 2.6 default, never turned off)."""
    real = torch.load
    calls = []

    def checked(*args, **kwargs):
        calls.append(kwargs.get("weights_only"))
        if kwargs.get("weights_only") is False:
            raise AssertionError(f"torch.load(weights_only=False) for {args[:1]}")
        # Force the restricted unpickler even where a caller relied on the default.
        return real(*args, **{**kwargs, "weights_only": True})

    monkeypatch.setattr(torch, "load", checked)
    out = tmp_path / "out"
    import shutil

    shutil.copytree(reference / "checkpoint-3", out / "checkpoint-3")
    train(
        TrainConfig(
            train_data=str(data4),
            output_dir=str(out),
            max_steps=4,
            save_steps=1,
            resume_from_checkpoint="latest",
            **TINY,
        )
    )
    assert len(calls) >= 3  # optimizer, scheduler, RNG state went through the check
    _assert_same_adapter(reference / "adapter_model.safetensors", out / "adapter_model.safetensors")


# --- resuming a finished run -------------------------------------------------------------------


def _snapshot(folder):
    return {
        str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_resuming_a_run_that_finished_mid_epoch_changes_nothing(data4, tmp_path, capsys):
    """4 samples at batch 2: 2 steps per epoch, so step 3 ends mid-epoch (where Trainer used to train a step 4)."""
    from higgs_lora.cli import main

    out = tmp_path / "out"
    argv = [
        "train",
        "--train_data",
        str(data4),
        "--output_dir",
        str(out),
        "--max_steps",
        "3",
        "--eval_split",
        "0.25",
        "--base_model",
        "tiny",
        "--audio_tokenizer",
        "tiny",
        "--batch_size",
        "2",
        "--logging_steps",
        "1",
        "--dataloader_num_workers",
        "0",
        "--report_to",
        "none",
        "--save_steps",
        "2",
        "--save_total_limit",
        "2",
    ]
    assert main(argv) == 0
    before = _snapshot(out)
    assert "checkpoint-3/trainer_state.json" in before
    capsys.readouterr()
    assert main([*argv, "--resume_from_checkpoint", "latest"]) == 0
    assert _snapshot(out) == before  # no checkpoint-4, no metrics line, no eval record, no rewritten card
    text = capsys.readouterr().out
    assert "already finished at step 3" in text and "checkpoint-3" in text
    assert "step 4" not in text


def test_finished_step_reads_the_plan_from_the_settings(tmp_path):
    ckpt = tmp_path / "checkpoint-3"
    ckpt.mkdir()
    (ckpt / "trainer_state.json").write_text(json.dumps({"global_step": 3, "max_steps": 3, "num_train_epochs": 2}))
    assert checkpoints.finished_step(ckpt, 3, 2.0) == 3
    assert checkpoints.finished_step(ckpt, 5, 2.0) is None  # --max_steps raised: train on
    assert checkpoints.finished_step(ckpt, -1, 2.0) == 3  # by epochs, the same epochs
    assert checkpoints.finished_step(ckpt, -1, 4.0) is None  # more epochs asked for
