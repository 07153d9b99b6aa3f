"""A device error stops generation runs; a sample error skips the sample (`infer.errors`, one rule).

The device errors are injected into the tiny model's generation: the message torch gives for a CUDA
device-side assert, and torch.OutOfMemoryError. After either, infer/eval/the training-time sample
callback must stop with one line, keep what was done, and exit non-zero.
"""

import json

import pytest
import torch

from higgs_lora.cli import main
from higgs_lora.data.formats import SampleError
from higgs_lora.infer.engine import VoiceCloner
from higgs_lora.infer.errors import EXIT_DEVICE_ERROR, DeviceError, is_device_error

ASSERT = "CUDA error: device-side assert triggered\nCUDA kernel errors might be asynchronously reported"
ILLEGAL = "CUDA error: an illegal memory access was encountered"
GREEDY = ["--temperature", "0", "--ras_win_len", "0", "--max_new_tokens", "12"]


@pytest.mark.parametrize(
    "err",
    [
        RuntimeError(ASSERT),
        RuntimeError(ILLEGAL),
        torch.OutOfMemoryError("CUDA out of memory."),
        RuntimeError("CUBLAS_STATUS_EXECUTION_FAILED when calling cublasGemmEx"),
        MemoryError(),
    ],
)
def test_device_errors_are_device_errors(err):
    assert is_device_error(err)


@pytest.mark.parametrize(
    "err",
    [
        SampleError("empty_text", "empty"),
        FileNotFoundError("clip.wav"),
        RuntimeError("codec exploded"),
        ValueError("bad sample rate"),
        RuntimeError("Error opening 'x.wav': Format not recognised."),
    ],
)
def test_sample_errors_are_not(err):
    assert not is_device_error(err)


def _failing_clone(monkeypatch, fail_on: int, err: BaseException):
    """VoiceCloner.clone raising `err` on its `fail_on`-th call (0-based), working before it."""
    real, calls = VoiceCloner.clone, []

    def clone(self, sample, *a, **kw):
        calls.append(sample.target_text)
        if len(calls) - 1 == fail_on:
            raise err
        if len(calls) - 1 > fail_on:
            raise AssertionError("generated after a device error")
        return real(self, sample, *a, **kw)

    monkeypatch.setattr(VoiceCloner, "clone", clone)
    return calls


@pytest.fixture()
def three_samples(sample_data_path, tmp_path):
    data = json.loads(sample_data_path.read_text(encoding="utf-8"))[:3]
    for record in data:  # absolute audio paths: the file is written elsewhere
        for message in record["messages"]:
            if isinstance(message["content"], dict) and "audio_url" in message["content"]:
                message["content"]["audio_url"] = str(sample_data_path.parent / message["content"]["audio_url"])
    path = tmp_path / "three.json"
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    return path


@pytest.mark.parametrize(
    "err", [RuntimeError(ASSERT), torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2 GiB")]
)
def test_infer_stops_at_a_device_error_and_keeps_what_was_done(three_samples, tmp_path, monkeypatch, capsys, err):
    calls = _failing_clone(monkeypatch, 1, err)
    out = tmp_path / "gen"
    rc = main(
        [
            "infer",
            "--chatml_file",
            str(three_samples),
            "--output_dir",
            str(out),
            "--model_path",
            "tiny",
            "--audio_tokenizer",
            "tiny",
            *GREEDY,
        ]
    )
    assert rc == EXIT_DEVICE_ERROR != 0
    assert len(calls) == 2  # the third sample was never attempted
    document = json.loads((out / "results.json").read_text(encoding="utf-8"))
    assert [r["index"] for r in document["samples"]] == [0] and (out / document["samples"][0]["output"]).is_file()
    assert document["skipped"] == []  # a device error is not a bad sample
    assert document["stopped_by_device_error"]["index"] == 1
    assert document["summary"]["generated"] == 1 and document["summary"]["not_attempted"] == 1
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "device error at sample 1" in lines[0] and "results.json" in lines[0]
    assert str(err).splitlines()[0] in lines[0]


def test_infer_still_skips_sample_errors(three_samples, tmp_path, monkeypatch):
    real, calls = VoiceCloner.clone, []

    def clone(self, sample, *a, **kw):
        calls.append(1)
        if len(calls) == 2:
            raise SampleError("unreadable_audio", "cannot read the clip")
        return real(self, sample, *a, **kw)

    monkeypatch.setattr(VoiceCloner, "clone", clone)
    out = tmp_path / "gen"
    rc = main(
        [
            "infer",
            "--chatml_file",
            str(three_samples),
            "--output_dir",
            str(out),
            "--model_path",
            "tiny",
            "--audio_tokenizer",
            "tiny",
            *GREEDY,
        ]
    )
    document = json.loads((out / "results.json").read_text(encoding="utf-8"))
    assert rc == 0 and [r["index"] for r in document["samples"]] == [0, 2]
    assert document["skipped"][0]["reason"] == "unreadable_audio" and "stopped_by_device_error" not in document


def test_debug_shows_the_device_error_traceback(three_samples, tmp_path, monkeypatch):
    _failing_clone(monkeypatch, 0, RuntimeError(ILLEGAL))
    with pytest.raises(DeviceError) as info:
        main(
            [
                "infer",
                "--chatml_file",
                str(three_samples),
                "--output_dir",
                str(tmp_path / "g"),
                "--model_path",
                "tiny",
                "--audio_tokenizer",
                "tiny",
                "--debug",
                *GREEDY,
            ]
        )
    assert isinstance(info.value.__cause__, RuntimeError) and ILLEGAL in str(info.value.__cause__)


# --- eval ----------------------------------------------------------------------------------------

EVAL = [
    "--model_path",
    "tiny",
    "--audio_tokenizer",
    "tiny",
    "--baseline_model",
    "tiny",
    "--speaker_encoder",
    "none",
    "--asr",
    "none",
    "--max_samples",
    "3",
    "--max_new_tokens",
    "12",
]


def test_eval_stops_at_a_device_error_and_keeps_what_was_done(three_samples, tmp_path, monkeypatch, capsys):
    calls = _failing_clone(monkeypatch, 4, torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 8 GiB"))
    out = tmp_path / "eval"
    rc = main(["eval", "--data", str(three_samples), "--output_dir", str(out), *EVAL])
    assert rc == EXIT_DEVICE_ERROR and len(calls) == 5  # fine-tuned: 3 clips, baseline: 1 clip, then the failure
    document = json.loads((out / "results.json").read_text(encoding="utf-8"))
    assert document["stopped_by_device_error"]["system"] == "baseline"
    assert document["stopped_by_device_error"]["index"] == 1
    generated = document["generated"]
    assert len(generated["fine_tuned"]) == 3 and len(generated["baseline"]) == 1
    assert all((out / r["wav"]).is_file() for records in generated.values() for r in records)
    assert not (out / "report.md").exists()
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "device error at baseline sample 1" in lines[0] and "out of memory" in lines[0]


def test_eval_lists_a_failed_sample_and_scores_the_rest(three_samples, tmp_path, monkeypatch):
    import csv

    _failing_clone_once(monkeypatch, 1, SampleError("unreadable_audio", "cannot read the clip"))
    out = tmp_path / "eval"
    assert main(["eval", "--data", str(three_samples), "--output_dir", str(out), *EVAL]) == 0
    with (out / "results.csv").open(encoding="utf-8") as f:
        rows = [r for r in csv.DictReader(f) if r["system"] == "fine_tuned"]
    assert [r["wav"] != "" for r in rows] == [True, False, True]
    assert "unreadable_audio" in rows[1]["error"] and rows[0]["error"] == ""


def _failing_clone_once(monkeypatch, fail_on: int, err: BaseException):
    real, calls = VoiceCloner.clone, []

    def clone(self, sample, *a, **kw):
        calls.append(1)
        if len(calls) - 1 == fail_on:
            raise err
        return real(self, sample, *a, **kw)

    monkeypatch.setattr(VoiceCloner, "clone", clone)


# --- the training-time sample callback -------------------------------------------------------------


def _callback(tmp_path, samples, tokenizer, fakes):
    from higgs_lora.eval.callback import SampleEvalCallback
    from higgs_lora.eval.metrics import Scorers

    FakeEncoder, FakeASR = fakes
    return SampleEvalCallback(
        samples,
        tokenizer,
        "tiny",
        tmp_path,
        every=1,
        max_new_tokens=12,
        tensorboard=False,
        scorers=Scorers(FakeEncoder(), FakeASR()),
    )


def test_callback_stops_training_at_a_device_error(
    tiny_model_factory, tiny_tokenizer, sample_samples, tmp_path, monkeypatch, fakes
):
    from transformers import TrainerState, TrainingArguments

    _failing_clone(monkeypatch, 1, RuntimeError(ASSERT))
    callback = _callback(tmp_path, sample_samples[:3], tiny_tokenizer, fakes)
    model = tiny_model_factory().train()
    with pytest.raises(DeviceError, match="device error at training step 5, eval sample 1"):
        callback.on_step_end(
            TrainingArguments(output_dir=str(tmp_path), report_to=[]), TrainerState(global_step=5), None, model=model
        )
    assert model.training  # left as found
    (record,) = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert record["step"] == 5 and "device-side assert" in record["eval_stopped_by_device_error"]
    assert "eval_sim" in record  # the one clip done is scored


def test_callback_skips_a_sample_error(
    tiny_model_factory, tiny_tokenizer, sample_samples, tmp_path, monkeypatch, fakes
):
    from transformers import TrainerState, TrainingArguments

    _failing_clone_once(monkeypatch, 0, SampleError("unreadable_audio", "cannot read the clip"))
    callback = _callback(tmp_path, sample_samples[:2], tiny_tokenizer, fakes)
    callback.on_step_end(
        TrainingArguments(output_dir=str(tmp_path), report_to=[]),
        TrainerState(global_step=1),
        None,
        model=tiny_model_factory(),
    )
    (record,) = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert record["eval_failed_samples"] == [0] and "eval_sim" in record


def test_train_cli_exits_non_zero_with_one_line_after_a_device_error(
    sample_data_path, tmp_path, monkeypatch, capsys, fakes
):
    from higgs_lora.eval import callback as cb
    from higgs_lora.eval.metrics import Scorers

    FakeEncoder, FakeASR = fakes
    monkeypatch.setattr(cb, "_optional_scorers", lambda: Scorers(FakeEncoder(), FakeASR()))
    _failing_clone(monkeypatch, 0, RuntimeError(ILLEGAL))
    out = tmp_path / "run"
    rc = main(
        [
            "train",
            "--train_data",
            str(sample_data_path),
            "--output_dir",
            str(out),
            "--base_model",
            "tiny",
            "--audio_tokenizer",
            "tiny",
            "--batch_size",
            "2",
            "--gradient_accumulation_steps",
            "1",
            "--max_steps",
            "3",
            "--eval_every_steps",
            "2",
            "--eval_samples",
            "1",
            "--eval_max_new_tokens",
            "12",
            "--dataloader_num_workers",
            "0",
            "--report_to",
            "none",
            "--save_steps",
            "100",
        ]
    )
    captured = capsys.readouterr()
    assert rc == EXIT_DEVICE_ERROR, captured
    # (the training progress bar shares the console, so the line is looked for, not its start)
    text = captured.out + captured.err
    assert text.count("error: device error") == 1
    line = next(part for part in text.splitlines() if "error: device error" in part)
    assert "training step 2, eval sample 0" in line and "illegal memory access" in line
    assert not (out / "adapter_model.safetensors").exists()


def test_callback_reports_the_first_device_error_when_restoring_the_rng_fails_too(
    tiny_model_factory, tiny_tokenizer, sample_samples, tmp_path, monkeypatch, fakes
):
    """On a GPU, restoring the CUDA RNG state after a device-side assert raises again: the line must
    still be the first error's."""
    import contextlib

    from transformers import TrainerState, TrainingArguments

    @contextlib.contextmanager
    def failing_restore(devices=None, **kwargs):
        try:
            yield
        finally:  # fork_rng restores the state in its `finally`
            raise RuntimeError("CUDA error: device-side assert triggered (while restoring the RNG)")

    monkeypatch.setattr(torch.random, "fork_rng", failing_restore)
    _failing_clone(monkeypatch, 0, RuntimeError(ILLEGAL))
    callback = _callback(tmp_path, sample_samples[:1], tiny_tokenizer, fakes)
    with pytest.raises(DeviceError, match="illegal memory access"):
        callback.on_step_end(
            TrainingArguments(output_dir=str(tmp_path), report_to=[]),
            TrainerState(global_step=3),
            None,
            model=tiny_model_factory(),
        )
