"""Ctrl-C (a real SIGINT) in train, infer, eval and tokenize: keep what was done, one line, no traceback."""

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from higgs_lora.cli import main
from higgs_lora.cli.common import EXIT_CTRL_C

REPO = Path(__file__).resolve().parents[2]
TINY = ["--model_path", "tiny", "--audio_tokenizer", "tiny"]


def _ctrl_c_on_call(monkeypatch, cls, name, on_call: int):
    """Send this process a real SIGINT while the `on_call`-th call of cls.name runs."""
    real = getattr(cls, name)
    calls = {"n": 0}

    def wrapped(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == on_call:
            os.kill(os.getpid(), signal.SIGINT)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(cls, name, wrapped)
    return calls


def test_the_first_ctrl_c_finishes_the_item_the_second_stops_at_once():
    from higgs_lora.interrupts import UntilCtrlC

    done = []
    loop = UntilCtrlC(range(5), "sample")
    for i in loop:
        if i == 1:
            os.kill(os.getpid(), signal.SIGINT)  # handled at once: a flag, no exception
        done.append(i)
    assert done == [0, 1] and loop.interrupted
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    with pytest.raises(KeyboardInterrupt):
        for i in UntilCtrlC(range(5)):
            os.kill(os.getpid(), signal.SIGINT)
            os.kill(os.getpid(), signal.SIGINT)  # the second one: the previous handler, KeyboardInterrupt


def test_train_ctrl_c_saves_like_sigterm_and_a_second_one_stops_at_once(tmp_path):
    import torch
    from transformers import TrainerControl

    from higgs_lora.train.faults import StopOnSignal

    class Args:
        device = torch.device("cpu")

    class State:
        global_step = 3

    stop = StopOnSignal()
    with stop.installed():
        os.kill(os.getpid(), signal.SIGINT)
        assert stop.requested and stop.signal_name == "Ctrl-C"
        control = stop.on_step_end(Args, State, TrainerControl())
        assert control.should_save and control.should_training_stop and stop.stopped_at == 3
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_a_ctrl_c_outside_a_clean_stop_is_one_line_exit_130(capsys, monkeypatch):
    from higgs_lora import cli

    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli.command_module("tokenize"), "run", interrupted)
    assert main(["tokenize", "d.json", "--cache_dir", "c"]) == EXIT_CTRL_C
    err = capsys.readouterr().err.strip()
    assert err.startswith("interrupted (Ctrl-C)") and "kept in --cache_dir" in err and len(err.splitlines()) == 1


def _data(tmp_path, n):
    from higgs_lora.data.sample_data import create_sample_data

    return create_sample_data(tmp_path / "data" / "d.json", n_samples=n)


def test_infer_ctrl_c_writes_results_for_the_samples_done(tmp_path, capsys, monkeypatch):
    from higgs_lora.infer.engine import VoiceCloner

    data = _data(tmp_path, 4)
    _ctrl_c_on_call(monkeypatch, VoiceCloner, "clone", on_call=2)
    out = tmp_path / "gen"
    rc = main(["infer", "--chatml_file", str(data), "--output_dir", str(out), *TINY, "--max_new_tokens", "12"])
    assert rc == EXIT_CTRL_C
    document = json.loads((out / "results.json").read_text(encoding="utf-8"))
    assert [r["index"] for r in document["samples"]] == [0, 1]  # the sample under way was finished
    assert document["summary"]["interrupted"] is True and document["summary"]["generated"] == 2
    assert sorted(p.name for p in out.glob("*.wav")) == sorted(r["output"] for r in document["samples"])
    err = capsys.readouterr().err
    assert "Traceback" not in err and "interrupted (Ctrl-C); 2 of 4 samples done" in err


def test_eval_ctrl_c_writes_the_report_for_the_samples_done(tmp_path, capsys, monkeypatch):
    from higgs_lora.infer.engine import VoiceCloner

    data = _data(tmp_path, 4)
    _ctrl_c_on_call(monkeypatch, VoiceCloner, "clone", on_call=2)
    out = tmp_path / "eval"
    rc = main(
        [
            "eval",
            "--data",
            str(data),
            *TINY,
            "--baseline_model",
            "tiny",
            "--output_dir",
            str(out),
            "--speaker_encoder",
            "none",
            "--asr",
            "none",
            "--max_new_tokens",
            "12",
        ]
    )
    assert rc == EXIT_CTRL_C
    with open(out / "results.csv", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert {r["system"] for r in rows} == {"fine_tuned", "ground_truth"}  # no baseline started after Ctrl-C
    assert sorted({int(r["index"]) for r in rows}) == [0, 1]
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert "2 of 4 samples" in summary["settings"]["interrupted"]
    err = capsys.readouterr().err
    assert "Traceback" not in err and "interrupted (Ctrl-C); Ctrl-C after 2 of 4 samples" in err


SLOW_ENCODE = """
import time
import higgs_lora.data.cache as c
real = c.CodeCache.encode_path
def slow(self, *args, **kwargs):
    result = real(self, *args, **kwargs)
    time.sleep(0.5)  # room for the test's Ctrl-C between clips
    return result
c.CodeCache.encode_path = slow
"""


@pytest.mark.timeout(300)
def test_tokenize_ctrl_c_keeps_what_it_encoded(tmp_path):
    data = _data(tmp_path, 6)
    inject = tmp_path / "inject"
    inject.mkdir()
    (inject / "sitecustomize.py").write_text(SLOW_ENCODE)
    cache = tmp_path / "cache"
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=f"{inject}{os.pathsep}{REPO}")
    cmd = [
        sys.executable,
        "-m",
        "higgs_lora",
        "tokenize",
        str(data),
        "--audio_tokenizer",
        "tiny",
        "--cache_dir",
        str(cache),
        "--device",
        "cpu",
    ]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 240
    # a clip's record (paths/xx/<sha1>.json), not identity.json, which is written before any clip
    while not any(p.parent.parent.name == "paths" for p in cache.rglob("*.json")):
        assert proc.poll() is None, proc.stderr.read()[-2000:]
        assert time.monotonic() < deadline
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == EXIT_CTRL_C, err[-2000:]
    assert "Traceback" not in err and "interrupted (Ctrl-C)" in err and "kept in --cache_dir" in err
    rerun = subprocess.run(cmd, env=dict(os.environ, PYTHONPATH=str(REPO)), capture_output=True, text=True, timeout=240)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    already = int(rerun.stdout.split(" were already done")[0].rsplit(", ", 1)[1])
    assert already >= 1  # what the interrupted run encoded was kept, not encoded again
