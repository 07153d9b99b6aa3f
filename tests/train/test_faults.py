"""Faults injected into real runs: invalid samples, NaN steps, kill -9, SIGTERM, a rank that dies."""

import dataclasses
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from higgs_lora.data.sample_data import create_sample_data
from higgs_lora.train import trainer as trainer_module
from higgs_lora.train.checkpoints import incomplete_reason, latest_checkpoint
from higgs_lora.train.faults import EXIT_INTERRUPTED, SKIPPED_SAMPLES, NonFiniteGuard, TrainingAborted
from higgs_lora.train.recipe import TrainConfig, train

REPO = Path(__file__).resolve().parents[2]
TINY = dict(
    base_model="tiny",
    audio_tokenizer="tiny",
    batch_size=2,
    gradient_accumulation_steps=1,
    logging_steps=1,
    dataloader_num_workers=0,
    report_to="none",
)
CLI_TINY = [
    "--base_model",
    "tiny",
    "--audio_tokenizer",
    "tiny",
    "--batch_size",
    "2",
    "--gradient_accumulation_steps",
    "1",
    "--logging_steps",
    "1",
    "--dataloader_num_workers",
    "0",
    "--report_to",
    "none",
]


def _free_port() -> str:
    import socket

    with socket.socket() as sock:  # fixed ports collide with other torchrun jobs on the machine
        sock.bind(("127.0.0.1", 0))
        return str(sock.getsockname()[1])


def _metrics(folder):
    return [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines() if line.strip()]


def _max_diff(a_path, b_path) -> float:
    a, b = load_file(a_path), load_file(b_path)
    assert a.keys() == b.keys()
    return max(float((a[k] - b[k]).abs().max()) for k in a)


# --- invalid samples ----------------------------------------------------------------------------


def _corrupt(data_path):
    records = json.loads(data_path.read_text(encoding="utf-8"))
    records[1]["messages"][2]["content"]["audio_url"] = "d_audio/missing.wav"
    records[3]["messages"] = records[3]["messages"][:4]  # no target turn
    bad_wav = data_path.parent / "broken.wav"
    bad_wav.write_bytes(b"RIFF\x00\x00not really a wav")
    records[4]["messages"][4]["content"]["audio_url"] = str(bad_wav)
    data_path.write_text(json.dumps(records), encoding="utf-8")
    return len(records)


def test_invalid_data_refuses_to_start_and_prints_the_summary(tmp_path, capsys):
    from higgs_lora.cli import main

    data = create_sample_data(tmp_path / "d.json", n_samples=6)
    _corrupt(data)
    out = tmp_path / "out"
    assert main(["train", "--train_data", str(data), "--output_dir", str(out), "--max_steps", "1"] + CLI_TINY) == 2
    err = capsys.readouterr().err
    assert "3 valid, 3 invalid of 6 samples" in err
    assert all(re.search(rf"sample {i}\b", err) for i in (1, 3, 4))
    assert not out.exists()


def test_skip_invalid_drops_exactly_the_invalid_samples_and_reports_them(tmp_path, monkeypatch, capsys):
    from higgs_lora.train import recipe

    data = create_sample_data(tmp_path / "d.json", n_samples=6)
    total = _corrupt(data)
    seen = []
    real = recipe.VoiceCloningDataset

    def spy(samples, *args, **kwargs):
        seen.extend(samples)
        return real(samples, *args, **kwargs)

    monkeypatch.setattr(recipe, "VoiceCloningDataset", spy)
    out = tmp_path / "out"
    train(TrainConfig(train_data=str(data), output_dir=str(out), max_steps=1, skip_invalid=True, **TINY))
    report = json.loads((out / SKIPPED_SAMPLES).read_text(encoding="utf-8"))
    assert [s["index"] for s in report["skipped"]] == [1, 3, 4]
    assert {s["reason"] for s in report["skipped"]} >= {"audio_not_found"}
    assert all(s["message"] for s in report["skipped"])
    assert (report["total"], report["kept"]) == (total, 3)
    assert "3 samples to train on, 3 skipped" in capsys.readouterr().out  # the start summary says so too
    # every valid sample reached training: none lost
    records = json.loads(data.read_text(encoding="utf-8"))
    valid_targets = {
        str((data.parent / records[i]["messages"][4]["content"]["audio_url"]).resolve()) for i in (0, 2, 5)
    }
    assert {str(Path(s.target_audio).resolve()) for s in seen} == valid_targets
    assert (out / "adapter_model.safetensors").is_file()


# --- non-finite steps ---------------------------------------------------------------------------


def _inject_nan(monkeypatch, bad_calls):
    """The training loss becomes NaN on the given (1-based) compute_loss calls."""
    real = trainer_module.compute_loss
    calls = {"n": 0}

    def nan_on_some(*args, **kwargs):
        parts = real(*args, **kwargs)
        calls["n"] += 1
        if calls["n"] in bad_calls:
            return dataclasses.replace(parts, loss=parts.loss * float("nan"))
        return parts

    monkeypatch.setattr(trainer_module, "compute_loss", nan_on_some)


def test_a_nan_step_is_skipped_without_touching_weights_or_optimizer(data4, tmp_path, monkeypatch, capsys):
    _inject_nan(monkeypatch, {2})  # batch 2, no accumulation: call 2 is optimizer step 2
    out = tmp_path / "out"
    train(
        TrainConfig(train_data=str(data4), output_dir=str(out), max_steps=4, save_steps=1, save_total_limit=5, **TINY)
    )
    c1, c2, c3 = (out / f"checkpoint-{s}" for s in (1, 2, 3))
    assert _max_diff(c1 / "adapter_model.safetensors", c2 / "adapter_model.safetensors") == 0.0
    assert _max_diff(c2 / "adapter_model.safetensors", c3 / "adapter_model.safetensors") > 0  # training went on
    opt1, opt2 = (torch.load(c / "optimizer.pt", weights_only=True)["state"] for c in (c1, c2))
    assert opt1.keys() == opt2.keys()
    for k in opt1:
        for name in ("exp_avg", "exp_avg_sq", "step"):
            assert torch.equal(opt1[k][name], opt2[k][name]), (k, name)
    records = _metrics(out)
    assert [r["step"] for r in records] == [1, 2, 3, 4]
    assert [r["skipped_nonfinite"] for r in records] == [0, 1, 0, 0]
    assert "step 2: non-finite loss or gradient, optimizer step skipped" in capsys.readouterr().err


def test_n_nonfinite_steps_in_a_row_abort_with_a_clear_message(data4, tmp_path, monkeypatch):
    _inject_nan(monkeypatch, set(range(2, 100)))
    out = tmp_path / "out"
    with pytest.raises(TrainingAborted, match="3 optimizer steps in a row had a non-finite") as info:
        train(
            TrainConfig(
                train_data=str(data4),
                output_dir=str(out),
                max_steps=8,
                save_steps=1,
                save_total_limit=10,
                max_nonfinite_steps=3,
                **TINY,
            )
        )
    assert "at step 4" in str(info.value) and "--resume_from_checkpoint latest" in str(info.value)
    assert latest_checkpoint(out) == out / "checkpoint-3"  # steps 2, 3 skipped and saved; 4 aborts


def test_nonfinite_gradient_with_a_finite_loss_is_caught():
    model = torch.nn.Linear(2, 1)
    model.weight.grad = torch.tensor([[float("inf"), 0.0]])
    model.bias.grad = torch.zeros(1)
    guard = NonFiniteGuard(2)
    guard.note_loss(torch.tensor(1.0))

    class Args:
        device = torch.device("cpu")

    class State:
        global_step, is_world_process_zero = 0, True

    guard.on_pre_optimizer_step(Args, State, None, model=model)
    assert model.weight.grad is None and guard.in_a_row == 1 and guard.pop_log_count() == 1
    model.weight.grad, model.bias.grad = torch.ones(1, 2), torch.ones(1)
    guard.note_loss(torch.tensor(1.0))
    guard.on_pre_optimizer_step(Args, State, None, model=model)
    assert model.weight.grad is not None and guard.in_a_row == 0  # a good step resets the count
    with pytest.raises(ValueError, match="--max_nonfinite_steps"):
        NonFiniteGuard(0)
    # fp16: the loss scaler overflows gradients on purpose and skips those steps itself; not counted
    fp16_guard = NonFiniteGuard(2, check_gradients=False)
    model.weight.grad = torch.tensor([[float("inf"), 0.0]])
    fp16_guard.note_loss(torch.tensor(1.0))
    fp16_guard.on_pre_optimizer_step(Args, State, None, model=model)
    assert fp16_guard.in_a_row == 0 and model.weight.grad is not None
    fp16_guard.note_loss(torch.tensor(float("nan")))  # a NaN loss still counts
    fp16_guard.on_pre_optimizer_step(Args, State, None, model=model)
    assert fp16_guard.in_a_row == 1


def test_sigterm_at_an_eval_step_saves_without_evaluating_first():
    from transformers import TrainerControl

    from higgs_lora.train.faults import StopOnSignal

    class Args:
        device = torch.device("cpu")

    class State:
        global_step = 4

    stop = StopOnSignal()
    control = TrainerControl(should_evaluate=True)  # DefaultFlowCallback asked for an eval at this step
    stop.on_step_end(Args, State, control)
    assert control.should_evaluate and not control.should_save and stop.stopped_at is None  # no signal yet
    stop.requested = True
    stop.on_step_end(Args, State, control)
    assert control.should_save and control.should_training_stop and not control.should_evaluate
    assert stop.stopped_at == 4


def test_a_forked_data_loader_worker_leaves_the_stop_to_the_main_process():
    from higgs_lora.train.faults import StopOnSignal

    stop = StopOnSignal()
    with stop.installed():
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:  # what a DataLoader worker inherits: this handler
            os.kill(os.getpid(), signal.SIGINT)
            os.write(w, b"1" if stop.requested else b"0")
            os._exit(0)
        os.waitpid(pid, 0)
        assert os.read(r, 1) == b"0" and not stop.requested


# --- process faults: real subprocesses and signals -----------------------------------------------

STEPS = 24  # long enough that the kill lands mid-run


@pytest.fixture(scope="module")
def uninterrupted(data4, tmp_path_factory):
    out = tmp_path_factory.mktemp("faults_ref") / "out"
    train(TrainConfig(train_data=str(data4), output_dir=str(out), max_steps=STEPS, save_steps=10**6, **TINY))
    return out


def _start(data, out, *extra):
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    cmd = [
        sys.executable,
        str(REPO / "trainer" / "train.py"),
        "--train_data",
        str(data),
        "--output_dir",
        str(out),
        "--max_steps",
        str(STEPS),
        *CLI_TINY,
        *extra,
    ]
    return subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for(predicate, proc, timeout=240):
    deadline = time.monotonic() + timeout
    while not predicate():
        if proc.poll() is not None:
            raise AssertionError(f"training ended early ({proc.returncode}): {proc.stderr.read()[-2000:]}")
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError("timed out waiting for the run")
        time.sleep(0.02)


def _logged_steps(out):
    path = out / "metrics.jsonl"
    return len(path.read_text().splitlines()) if path.is_file() else 0


@pytest.mark.timeout(300)
def test_kill_9_then_resume_latest_matches_the_uninterrupted_run(data4, uninterrupted, tmp_path):
    out = tmp_path / "out"
    proc = _start(data4, out, "--save_steps", "1", "--save_total_limit", "2")
    _wait_for(lambda: (out / "checkpoint-3").is_dir(), proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    resumed_from = latest_checkpoint(out)
    step = int(resumed_from.name.split("-")[1])
    assert 3 <= step < STEPS  # killed mid-run, and a complete checkpoint survived
    train(
        TrainConfig(
            train_data=str(data4),
            output_dir=str(out),
            max_steps=STEPS,
            save_steps=1,
            save_total_limit=2,
            resume_from_checkpoint="latest",
            **TINY,
        )
    )
    assert [r["step"] for r in _metrics(out)] == list(range(1, STEPS + 1))
    assert _max_diff(uninterrupted / "adapter_model.safetensors", out / "adapter_model.safetensors") <= 1e-6


@pytest.mark.timeout(300)
def test_sigterm_saves_a_checkpoint_exits_cleanly_and_latest_resumes(data4, uninterrupted, tmp_path):
    out = tmp_path / "out"
    proc = _start(data4, out, "--save_steps", "1000")  # no regular checkpoint: the one we find is SIGTERM's
    _wait_for(lambda: _logged_steps(out) >= 2, proc)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == EXIT_INTERRUPTED, err[-2000:]
    assert "Traceback" not in err
    assert "stopped by SIGTERM after step" in err and "--resume_from_checkpoint latest" in err
    ckpt = latest_checkpoint(out)
    assert ckpt is not None and incomplete_reason(ckpt) is None
    step = int(ckpt.name.split("-")[1])
    assert 2 <= step < STEPS
    assert not (out / "adapter_model.safetensors").exists()  # no "final" adapter from an unfinished run
    train(
        TrainConfig(
            train_data=str(data4),
            output_dir=str(out),
            max_steps=STEPS,
            save_steps=1000,
            resume_from_checkpoint="latest",
            **TINY,
        )
    )
    assert [r["step"] for r in _metrics(out)] == list(range(1, STEPS + 1))
    assert _max_diff(uninterrupted / "adapter_model.safetensors", out / "adapter_model.safetensors") <= 1e-6


@pytest.mark.timeout(300)
def test_ctrl_c_saves_a_checkpoint_like_sigterm_with_one_line(data4, tmp_path):
    out = tmp_path / "out"
    proc = _start(data4, out, "--save_steps", "1000")
    _wait_for(lambda: _logged_steps(out) >= 2, proc)
    proc.send_signal(signal.SIGINT)  # what Ctrl-C in a terminal sends
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == EXIT_INTERRUPTED, err[-2000:]
    assert "Traceback" not in err and "KeyboardInterrupt" not in err
    assert "stopped by Ctrl-C after step" in err and "--resume_from_checkpoint latest" in err
    ckpt = latest_checkpoint(out)
    assert ckpt is not None and incomplete_reason(ckpt) is None
    assert 2 <= int(ckpt.name.split("-")[1]) < STEPS
    assert not (out / "adapter_model.safetensors").exists()


@pytest.mark.timeout(300)
def test_ctrl_c_in_a_terminal_reaches_the_data_loader_workers_too_and_still_saves(data4, tmp_path):
    """A terminal sends SIGINT to the whole process group: the workers must not die of it mid-epoch."""
    out = tmp_path / "out"
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    cmd = [
        sys.executable,
        str(REPO / "trainer" / "train.py"),
        "--train_data",
        str(data4),
        "--output_dir",
        str(out),
        "--max_steps",
        str(STEPS),
        *CLI_TINY,
        "--save_steps",
        "1000",
    ]
    cmd[cmd.index("--dataloader_num_workers") + 1] = "2"
    proc = subprocess.Popen(
        cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )  # its own process group, as a shell job has
    _wait_for(lambda: _logged_steps(out) >= 2, proc)
    os.killpg(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == EXIT_INTERRUPTED, err[-2000:]
    assert "Traceback" not in err and err.count("saving a checkpoint at the end of this step") == 1
    ckpt = latest_checkpoint(out)
    assert ckpt is not None and incomplete_reason(ckpt) is None


SITECUSTOMIZE = """
import os
if os.environ.get("RANK") == "1":
    import higgs_lora.train.trainer as t
    real = t.HiggsAudioTrainer.compute_loss
    calls = {"n": 0}
    def failing(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("injected failure on this rank")
        return real(self, *args, **kwargs)
    t.HiggsAudioTrainer.compute_loss = failing
"""


@pytest.mark.timeout(300)
def test_one_rank_dying_ends_the_torchrun_job_with_the_rank_named(data4, tmp_path):
    inject = tmp_path / "inject"
    inject.mkdir()
    (inject / "sitecustomize.py").write_text(SITECUSTOMIZE)
    out = tmp_path / "out"
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=f"{inject}{os.pathsep}{REPO}")
    start = time.monotonic()
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc_per_node",
            "2",
            "--master_port",
            _free_port(),
            str(REPO / "trainer" / "train.py"),
            "--train_data",
            str(data4),
            "--output_dir",
            str(out),
            "--max_steps",
            "50",
            "--save_steps",
            "1000",
            *CLI_TINY,
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=280,
    )
    elapsed = time.monotonic() - start
    assert proc.returncode != 0
    err = proc.stderr
    assert "error: rank 1 of 2 failed: RuntimeError: injected failure on this rank" in err
    assert elapsed < 240  # ended, did not hang in a collective
    assert not (out / "adapter_model.safetensors").exists()


@pytest.mark.timeout(300)
def test_sigterm_to_torchrun_saves_one_checkpoint_agreed_by_both_ranks(data4, tmp_path):
    out = tmp_path / "out"
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc_per_node",
            "2",
            "--master_port",
            _free_port(),
            str(REPO / "trainer" / "train.py"),
            "--train_data",
            str(data4),
            "--output_dir",
            str(out),
            "--max_steps",
            "200",
            "--save_steps",
            "1000",
            *CLI_TINY,
        ],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    _wait_for(lambda: _logged_steps(out) >= 2, proc)
    proc.send_signal(signal.SIGTERM)  # what a cluster scheduler does; torchrun forwards it to the workers
    _, err = proc.communicate(timeout=120)
    assert proc.returncode != 0  # torchrun reports the signal it got
    assert "failed:" not in err, err[-3000:]  # no rank crashed: both stopped at the same step boundary
    ckpt = latest_checkpoint(out)
    assert ckpt is not None, err[-3000:]
    assert (ckpt / "rng_state_0.pth").is_file() and (ckpt / "rng_state_1.pth").is_file()
    assert 2 <= int(ckpt.name.split("-")[1]) < 200
    assert "stopped by SIGTERM after step" in err
