"""Validation: every bad sample named by index and reason, nothing dropped silently; the CLI."""

import json

import numpy as np
import pytest
import soundfile as sf

from higgs_lora.cli import main
from higgs_lora.data.validate import InvalidDataError, load_samples, validate_file


@pytest.fixture()
def good_records(sample_data_path):
    return json.loads(sample_data_path.read_text(encoding="utf-8"))


def _absolute(record, base):
    """The record with its audio paths made absolute, so it can be written into any folder."""
    record = json.loads(json.dumps(record))
    for m in record["messages"]:
        if isinstance(m["content"], dict) and m["content"].get("type") == "audio":
            m["content"]["audio_url"] = str(base / m["content"]["audio_url"])
    return record


@pytest.fixture()
def mixed(tmp_path, good_records, sample_data_path):
    base = sample_data_path.parent
    good = [_absolute(r, base) for r in good_records[:3]]

    not_audio = tmp_path / "notes.wav"
    not_audio.write_text("these are notes, not audio")
    short = tmp_path / "short.wav"
    sf.write(str(short), np.zeros(480, dtype=np.float32), 24000)  # 20 ms

    def with_target(path):
        r = json.loads(json.dumps(good[0]))
        r["messages"][-1]["content"]["audio_url"] = str(path)
        return r

    four = json.loads(json.dumps(good[1]))
    four["messages"] = four["messages"][:-1]
    wrong_roles = json.loads(json.dumps(good[2]))
    wrong_roles["messages"][3]["role"] = "assistant"

    records = [
        good[0],                                   # 0 ok
        with_target(tmp_path / "gone.wav"),        # 1 missing_audio
        four,                                      # 2 no_target_audio
        good[1],                                   # 3 ok
        wrong_roles,                               # 4 bad_structure
        with_target(not_audio),                    # 5 unreadable_audio
        with_target(short),                        # 6 audio_too_short
        good[2],                                   # 7 ok
    ]
    path = tmp_path / "mixed.json"
    path.write_text(json.dumps(records, ensure_ascii=False), encoding="utf-8")
    return path


EXPECTED_PROBLEMS = [
    (1, "missing_audio"),
    (2, "no_target_audio"),
    (4, "bad_structure"),
    (5, "unreadable_audio"),
    (6, "audio_too_short"),
]


def test_report_lists_every_bad_sample_by_index_and_reason(mixed):
    report = validate_file(mixed)
    assert not report.ok
    assert report.total == 8
    assert [(p.index, p.reason) for p in report.problems] == EXPECTED_PROBLEMS
    assert [i for i, _ in report.samples] == [0, 3, 7]
    problems = {p.index: p.message for p in report.problems}
    assert "gone.wav" in problems[1]
    assert "fifth message" in problems[2]
    assert "notes.wav" in problems[5]
    assert "short.wav" in problems[6]
    summary = report.summary()
    assert "3 valid, 5 invalid of 8" in summary
    for index, reason in EXPECTED_PROBLEMS:
        assert f"sample {index}: [{reason}]" in summary


def test_audio_checks_can_be_skipped(mixed):
    report = validate_file(mixed, check_audio=False)
    assert [(p.index, p.reason) for p in report.problems] == [(2, "no_target_audio"), (4, "bad_structure")]


def test_for_inference_the_four_message_sample_is_fine(mixed):
    report = validate_file(mixed, require_target=False)
    assert 2 in [i for i, _ in report.samples]
    assert dict(report.samples)[2].target_audio is None


def test_load_samples_raises_naming_every_bad_index(mixed):
    with pytest.raises(InvalidDataError) as err:
        load_samples(mixed)
    message = str(err.value)
    for index, reason in EXPECTED_PROBLEMS:
        assert f"sample {index}: [{reason}]" in message
    for index in (0, 3, 7):
        assert f"sample {index}:" not in message
    assert err.value.report.problems and "higgs-lora validate" in message


def test_load_samples_of_good_data_returns_all(sample_data_path, good_records):
    samples = load_samples(sample_data_path, default_system_prompt="unused")
    assert len(samples) == len(good_records)
    assert samples[0].system_prompt == good_records[0]["messages"][0]["content"]
    assert samples[0].ref_audio == str(sample_data_path.parent / good_records[0]["messages"][2]["content"]["audio_url"])


def test_load_samples_of_an_empty_file_raises(tmp_path):
    path = tmp_path / "empty.json"
    path.write_text("[]")
    with pytest.raises(InvalidDataError, match="0 valid"):
        load_samples(path)


def test_cli_validate_exit_codes_and_output(mixed, sample_data_path, capsys):
    assert main(["validate", str(mixed)]) == 1
    out = capsys.readouterr().out
    for index, reason in EXPECTED_PROBLEMS:
        assert f"sample {index}: [{reason}]" in out

    assert main(["validate", str(sample_data_path)]) == 0
    out = capsys.readouterr().out
    assert "0 invalid" in out and "[" not in out.split("\n", 1)[-1]


def test_cli_validate_for_inference_accepts_four_messages(tmp_path, good_records, sample_data_path, capsys):
    four = _absolute(good_records[0], sample_data_path.parent)
    four["messages"] = four["messages"][:-1]
    path = tmp_path / "infer.json"
    path.write_text(json.dumps([four]))
    assert main(["validate", str(path)]) == 1
    assert "no_target_audio" in capsys.readouterr().out
    assert main(["validate", str(path), "--for_inference"]) == 0


def test_cli_validate_missing_file_is_a_clean_error(tmp_path, capsys):
    assert main(["validate", str(tmp_path / "absent.json")]) == 2
    assert "absent.json" in capsys.readouterr().err
