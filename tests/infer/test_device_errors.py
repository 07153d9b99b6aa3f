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


@pytest.mark.parametrize("err", [RuntimeError(ASSERT), RuntimeError(ILLEGAL), torch.OutOfMemoryError("CUDA out of memory."),
                                 RuntimeError("CUBLAS_STATUS_EXECUTION_FAILED when calling cublasGemmEx"),
                                 MemoryError()])
def test_device_errors_are_device_errors(err):
    assert is_device_error(err)


@pytest.mark.parametrize("err", [SampleError("empty_text", "empty"), FileNotFoundError("clip.wav"),
                                 RuntimeError("codec exploded"), ValueError("bad sample rate"),
                                 RuntimeError("Error opening 'x.wav': Format not recognised.")])
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


@pytest.mark.parametrize("err", [RuntimeError(ASSERT), torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2 GiB")])
def test_infer_stops_at_a_device_error_and_keeps_what_was_done(three_samples, tmp_path, monkeypatch, capsys, err):
    calls = _failing_clone(monkeypatch, 1, err)
    out = tmp_path / "gen"
    rc = main(["infer", "--chatml_file", str(three_samples), "--output_dir", str(out), "--model_path", "tiny",
               "--audio_tokenizer", "tiny", *GREEDY])
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
    rc = main(["infer", "--chatml_file", str(three_samples), "--output_dir", str(out), "--model_path", "tiny",
               "--audio_tokenizer", "tiny", *GREEDY])
    document = json.loads((out / "results.json").read_text(encoding="utf-8"))
    assert rc == 0 and [r["index"] for r in document["samples"]] == [0, 2]
    assert document["skipped"][0]["reason"] == "unreadable_audio" and "stopped_by_device_error" not in document


def test_debug_shows_the_device_error_traceback(three_samples, tmp_path, monkeypatch):
    _failing_clone(monkeypatch, 0, RuntimeError(ILLEGAL))
    with pytest.raises(DeviceError) as info:
        main(["infer", "--chatml_file", str(three_samples), "--output_dir", str(tmp_path / "g"), "--model_path", "tiny",
              "--audio_tokenizer", "tiny", "--debug", *GREEDY])
    assert isinstance(info.value.__cause__, RuntimeError) and ILLEGAL in str(info.value.__cause__)
