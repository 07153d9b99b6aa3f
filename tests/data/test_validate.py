"""Validation: every sample valid or listed with index, id and codes from the fixed set; the CLI and its exits."""

import io
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from higgs_lora.cli import main
from higgs_lora.data.audio_check import AudioLimits
from higgs_lora.data.validate import CODES, InvalidDataError, check_audio_files, load_samples, validate_file

SR = 24000


def _tone(seconds, amplitude=0.3, sr=SR, channels=1):
    t = np.arange(int(seconds * sr)) / sr
    wave = (amplitude * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
    return np.stack([wave] * channels, axis=1) if channels > 1 else wave


def _corrupt_flac(path):
    """A FLAC whose header is fine (it reports 3 s) but whose frames stop decoding half-way."""
    sf.write(str(path), _tone(3.0), SR, format="FLAC")
    data = bytearray(path.read_bytes())
    for i in range(len(data) // 2, len(data) // 2 + 2000):
        data[i] = (data[i] * 7 + 13) % 256
    path.write_bytes(bytes(data))
    assert sf.info(str(path)).frames == 3 * SR  # the header alone looks fine


@pytest.fixture()
def clips(tmp_path):
    d = tmp_path / "clips"
    d.mkdir()
    sf.write(str(d / "good.wav"), _tone(1.0), SR)
    sf.write(str(d / "stereo.flac"), _tone(1.5, sr=44100, channels=2), 44100)
    sf.write(str(d / "short.wav"), _tone(0.1), SR)
    sf.write(str(d / "long.wav"), _tone(41.0, sr=8000), 8000)
    sf.write(str(d / "silent.wav"), np.zeros(SR, dtype=np.float32), SR)
    sf.write(str(d / "quiet.wav"), _tone(1.0, amplitude=1e-4), SR)  # about -83 dBFS
    (d / "notes.wav").write_text("these are notes, not audio")
    _corrupt_flac(d / "corrupt.flac")
    return d


def _flat(ref="clips/good.wav", target="clips/good.wav", ref_text="hello there", target_text="general kenobi", **extra):
    record = {"ref_text": ref_text, "ref_audio": ref, "target_text": target_text, "target_audio": target}
    record = {k: v for k, v in record.items() if v is not None}
    record.update(extra)
    return record


def _chatml(roles=("user", "assistant", "user", "assistant")):
    contents = {"user": "some words", "assistant": {"type": "audio", "audio_url": "clips/good.wav"}}
    return {"messages": [{"role": r, "content": contents.get(r, "x")} for r in roles]}


# index -> the codes the validator must give (None: valid)
CASES = [
    (_flat(id="utt-0"), None),
    ("just a string", ["not_an_object"]),
    ({"foo": 1}, ["no_messages"]),
    (_chatml(("user", "narrator", "assistant", "user", "assistant")), ["unknown_role"]),
    (_flat(ref_text=None), ["no_reference_text"]),
    (_flat(ref=None), ["no_reference_audio"]),
    (_flat(target_text=None), ["no_target_text"]),
    (_flat(target=None), ["no_target_audio"]),
    (_flat(ref_text="   "), ["empty_text"]),
    (_flat(target_text="ـــ  ـ"), ["empty_text"]),  # only tatweel: empty once normalised
    (_flat(target="clips/gone.wav"), ["audio_not_found"]),
    (_flat(target="clips/notes.wav"), ["audio_unreadable"]),
    (_flat(target="clips/corrupt.flac"), ["audio_unreadable"]),
    (_flat(target="clips/short.wav"), ["audio_too_short"]),
    (_flat(target="clips/long.wav"), ["audio_too_long"]),
    (_flat(target="clips/silent.wav"), ["audio_silent"]),
    (_flat(target="clips/quiet.wav"), ["audio_silent"]),
    (_flat(target="https://example.org/t.wav"), ["remote_audio"]),
    (_flat(target="clips/stereo.flac", speaker="spk2"), None),  # any rate, multichannel
    (_flat(target_text="word " * 80), None),  # valid, with a speaking-rate warning
    (_flat(ref="clips/gone.wav", target_text=""), ["empty_text", "audio_not_found"]),
]


@pytest.fixture()
def broken(tmp_path, clips):
    path = tmp_path / "broken.jsonl"
    path.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r, _ in CASES) + "\n", encoding="utf-8")
    return path


def test_every_code_is_given_to_the_sample_that_has_it(broken):
    report = validate_file(broken)
    assert report.total == len(CASES)
    got = {s.index: s.codes for s in report.invalid}
    want = {i: codes for i, (_, codes) in enumerate(CASES) if codes}
    assert got == want
    assert [i for i, _ in report.samples] == [i for i, (_, codes) in enumerate(CASES) if codes is None]
    assert set(CODES) == {c for codes in want.values() for c in codes}  # the test covers the whole set
    assert [(w["index"], w["code"]) for w in report.warnings] == [(19, "implausible_speaking_rate")]
    assert report.to_dict()["invalid"][0] == {
        "index": 1,
        "id": None,
        "errors": [{"code": "not_an_object", "message": report.invalid[0].errors[0][1]}],
    }
    assert not report.ok and report.valid == 3


def test_messages_name_the_file_and_the_id(broken, clips):
    report = validate_file(broken)
    by_index = {s.index: s for s in report.invalid}
    assert "gone.wav" in by_index[10].line() and "target audio" in by_index[10].line()
    assert "NaN" not in by_index[12].line() and "corrupt.flac" in by_index[12].line()
    assert "41.0 s" in by_index[14].line()
    assert "--allow_remote_audio" in by_index[17].line()
    assert report.samples[0][1].ref_audio == str(clips / "good.wav")
    summary = report.summary()
    assert "3 valid, 18 invalid of 21 samples" in summary
    assert "  audio_silent: 2" in summary and "  empty_text: 3" in summary
    assert "sample 20: [empty_text]" in summary and "; [audio_not_found]" in summary
    assert "[implausible_speaking_rate]" in summary.split("warnings", 1)[1]


def test_limits_are_configurable(broken):
    report = validate_file(
        broken,
        min_duration=0.05,
        max_duration=60,
        silence_dbfs=-90,
        allow_remote_audio=True,
        min_chars_per_second=0,
        max_chars_per_second=1000,
    )
    valid = {i for i, _ in report.samples}
    assert {13, 14, 16, 17}.issubset(valid)  # short, long, quiet, remote (not checked) now pass
    assert 15 not in valid  # digital silence is below any threshold
    assert not report.warnings


def test_cli_exit_codes_report_json_and_console(broken, tmp_path, capsys, clips):
    out_json = tmp_path / "r" / "report.json"
    assert main(["validate", str(broken), "--report", str(out_json), "--examples", "2"]) == 1
    out = capsys.readouterr().out
    assert "audio_unreadable: 2" in out and "... and 16 more" in out
    body = json.loads(out_json.read_text(encoding="utf-8"))
    assert set(body) >= {"total", "valid", "invalid", "warnings"}
    assert (body["total"], body["valid"], len(body["invalid"])) == (21, 3, 18)
    assert body["invalid"][-1]["errors"][1]["code"] == "audio_not_found"
    assert body["warnings"][0]["code"] == "implausible_speaking_rate"

    good = tmp_path / "good.json"
    good.write_text(json.dumps({"samples": [_flat(), _flat(target="clips/stereo.flac")]}))
    assert main(["validate", str(good)]) == 0

    bad = tmp_path / "bad.json"
    bad.write_text('[\n  {"ref_text": "a",\n  oops\n]')
    assert main(["validate", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "bad.json" in err and "line 3" in err
    assert main(["validate", str(tmp_path / "absent.json")]) == 2


def test_no_target_audio_points_to_for_inference(tmp_path, clips, capsys):
    path = tmp_path / "infer.json"
    path.write_text(json.dumps([_flat(target=None)]))
    assert main(["validate", str(path)]) == 1
    out = capsys.readouterr().out
    assert "no_target_audio" in out and "--for_inference" in out
    assert main(["validate", str(path), "--for_inference"]) == 0


def test_the_design_entry_point_validates(broken, tmp_path):
    import importlib.util

    spec = importlib.util.spec_from_file_location("design_train", Path(__file__).parents[2] / "trainer" / "train.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.main(["--validate_data_only", "--train_data", str(broken)]) == 1
    good = tmp_path / "good.json"
    good.write_text(json.dumps([_flat()]))
    assert module.main(["--validate_data_only", "--train_data", str(good)]) == 0


def test_load_samples_raises_naming_every_bad_sample(broken):
    with pytest.raises(InvalidDataError) as err:
        load_samples(broken)
    message, warnings = str(err.value).split("\nwarnings", 1)
    for index, (_, codes) in enumerate(CASES):
        assert (f"sample {index}:" in message or f"sample {index} (" in message) == bool(codes)
    assert "sample 19: [implausible_speaking_rate]" in warnings
    assert err.value.report.problems[0].reason == "not_an_object"


def test_load_samples_normalises_transcripts(tmp_path, clips):
    path = tmp_path / "ar.json"
    path.write_text(
        json.dumps([_flat(ref_text="  مرحـــبا   بكم ", target_text="السَّلامُ ٣")], ensure_ascii=False), encoding="utf-8"
    )
    (default,) = load_samples(path)
    assert (default.ref_text, default.target_text) == ("مرحبا بكم", "السَّلامُ ٣")
    (strict,) = load_samples(path, text_normalization="whitespace,tatweel,strip_diacritics,digits=western")
    assert strict.target_text == "السلام 3"
    (raw,) = load_samples(path, text_normalization="none")
    assert raw.ref_text == "  مرحـــبا   بكم "


def test_load_samples_of_good_and_empty_files(sample_data_path, tmp_path):
    records = json.loads(sample_data_path.read_text(encoding="utf-8"))
    samples = load_samples(sample_data_path, default_system_prompt="unused")
    assert len(samples) == len(records)
    assert samples[0].system_prompt == records[0]["messages"][0]["content"]
    empty = tmp_path / "empty.json"
    empty.write_text("[]")
    with pytest.raises(InvalidDataError, match="0 valid") as err:
        load_samples(empty)
    assert str(err.value).endswith("The file holds no samples.") and "Fix or remove" not in str(err.value)


def test_ten_thousand_samples_in_parallel_workers_with_a_progress_bar(tmp_path, clips, capsys):
    path = tmp_path / "many.jsonl"
    refs = ["clips/good.wav", "clips/stereo.flac", "clips/quiet.wav"]
    with open(path, "w", encoding="utf-8") as f:
        for i in range(10_000):
            f.write(json.dumps(_flat(ref=refs[i % 3], target=refs[(i + 1) % 3], id=f"u{i}")) + "\n")
    t0 = time.perf_counter()
    parallel = validate_file(path, workers=2, progress=True)
    elapsed = time.perf_counter() - t0
    assert "Checking audio" in capsys.readouterr().err
    assert parallel.total == 10_000
    # every sample touching quiet.wav (two of three) is invalid, the rest valid
    assert parallel.valid == sum(1 for i in range(10_000) if 2 not in (i % 3, (i + 1) % 3))
    assert {c for s in parallel.invalid for c in s.codes} == {"audio_silent"}
    assert elapsed < 60, f"10,000 samples took {elapsed:.1f} s"


def test_parallel_and_serial_audio_checks_agree(clips):
    paths = sorted(str(p) for p in clips.iterdir()) * 5 + [str(clips / "gone.wav")]
    limits = AudioLimits()
    serial = check_audio_files(paths, limits, workers=1)
    parallel = check_audio_files(paths, limits, workers=2)
    assert serial == parallel
    assert serial[str(clips / "gone.wav")].code == "audio_not_found"


# ---------------------------------------------------------------- property-based: never raises, classifies all

_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=8),
    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=6), c, max_size=3),
    max_leaves=6,
)
_AUDIO_NAMES = ["a.wav", "b.wav", "c.flac", "missing.wav", "https://x.org/y.wav", "", "../../etc/passwd"]


@st.composite
def _corrupted_record(draw):
    messages = [
        {"role": "system", "content": "Speak."},
        {"role": "user", "content": draw(st.text(max_size=20))},
        {"role": "assistant", "content": {"type": "audio", "audio_url": draw(st.sampled_from(_AUDIO_NAMES))}},
        {"role": "user", "content": draw(st.text(max_size=20))},
        {"role": "assistant", "content": {"type": "audio", "audio_url": draw(st.sampled_from(_AUDIO_NAMES))}},
    ]
    record = {"messages": messages, "speaker": draw(_json)}
    for _ in range(draw(st.integers(0, 4))):
        kind = draw(st.sampled_from(["drop", "role", "content", "swap", "field", "whole", "misc"]))
        msgs = record.get("messages") if isinstance(record, dict) else None
        if kind == "whole":
            record = draw(_json)
        elif not isinstance(msgs, list) or not msgs:
            continue
        elif kind == "drop":
            msgs.pop(draw(st.integers(0, len(msgs) - 1)))
        elif kind == "role" and isinstance(msgs[0], dict):
            msgs[draw(st.integers(0, len(msgs) - 1))] = {"role": draw(_json), "content": draw(_json)}
        elif kind == "content":
            msgs[draw(st.integers(0, len(msgs) - 1))] = {
                "role": draw(st.sampled_from(["user", "assistant"])),
                "content": draw(_json),
            }
        elif kind == "swap":
            i, j = draw(st.integers(0, len(msgs) - 1)), draw(st.integers(0, len(msgs) - 1))
            msgs[i], msgs[j] = msgs[j], msgs[i]
        elif kind == "field":
            record["messages"] = draw(_json)
        elif kind == "misc":
            record["misc"] = {"target_audio": draw(_json)}
    return record


@st.composite
def _audio_bytes(draw):
    buf = io.BytesIO()
    kind = draw(st.sampled_from(["wav", "flac", "random"]))
    if kind == "random":
        return draw(st.binary(max_size=600))
    seconds = draw(st.floats(0.0, 1.0))
    sf.write(buf, _tone(seconds, sr=8000), 8000, format=kind.upper())
    data = bytearray(buf.getvalue())
    if data and draw(st.booleans()):  # overwrite a random stretch
        start = draw(st.integers(0, len(data) - 1))
        junk = draw(st.binary(min_size=1, max_size=200))
        data[start : start + len(junk)] = junk
    if draw(st.booleans()):  # truncate
        data = data[: draw(st.integers(0, len(data)))]
    return bytes(data)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    records=st.lists(_corrupted_record(), min_size=1, max_size=6),
    files=st.tuples(_audio_bytes(), _audio_bytes(), _audio_bytes()),
)
def test_property_validator_never_raises_and_classifies_every_sample(records, files):
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        for name, data in zip(["a.wav", "b.wav", "c.flac"], files):
            (d / name).write_bytes(data)
        path = d / "data.jsonl"
        path.write_text("\n".join(json.dumps(r) for r in records) + "\n", encoding="utf-8")
        report = validate_file(path)
    assert report.total == len(records)
    valid = [i for i, _ in report.samples]
    invalid = [s.index for s in report.invalid]
    assert sorted(valid + invalid) == list(range(len(records)))
    for s in report.invalid:
        assert s.errors and all(code in CODES for code in s.codes)


# --- each sample's first code is its cause; codes that follow from it are not counted ---------------


def _three_samples(tmp_path):
    from higgs_lora.data.sample_data import create_sample_data

    path = create_sample_data(tmp_path / "d.json", n_samples=3)
    return path, json.loads(path.read_text(encoding="utf-8"))


def test_an_unknown_role_is_the_only_counted_code(tmp_path):
    path, records = _three_samples(tmp_path)
    records[0]["messages"][1]["role"] = "narrator"  # the reference transcript's message, content intact
    path.write_text(json.dumps(records), encoding="utf-8")
    report = validate_file(path)
    (bad,) = report.invalid
    assert bad.codes[0] == "unknown_role"
    assert dict(report.code_counts()) == {"unknown_role": 1}
    assert set(bad.derived) == set(bad.codes[1:]) and bad.derived  # listed, marked, not counted
    summary = report.summary()
    assert "  unknown_role: 1" in summary and "no_reference_audio: 1" not in summary
    assert "follows from [unknown_role]" in summary
    derived = [e for e in report.to_dict()["invalid"][0]["errors"] if e.get("derived")]
    assert [e["code"] for e in derived] == bad.derived


def test_a_missing_message_is_the_first_code_and_the_only_counted_one(tmp_path):
    path, records = _three_samples(tmp_path)
    del records[1]["messages"][2]  # the reference audio: every later turn moves up one slot
    path.write_text(json.dumps(records), encoding="utf-8")
    report = validate_file(path)
    (bad,) = report.invalid
    assert bad.codes[0] == "no_reference_audio"
    assert report.problems[0].reason == "no_reference_audio"
    assert dict(report.code_counts()) == {"no_reference_audio": 1}


def test_independent_problems_in_a_well_placed_sample_all_count(tmp_path):
    path, records = _three_samples(tmp_path)
    records[2]["messages"][1]["content"] = "  "  # empty reference transcript, in its place
    records[2]["messages"] = records[2]["messages"][:4]  # and no target audio
    path.write_text(json.dumps(records), encoding="utf-8")
    report = validate_file(path)
    (bad,) = report.invalid
    assert bad.codes == ["empty_text", "no_target_audio"] and not bad.derived
    assert dict(report.code_counts()) == {"empty_text": 1, "no_target_audio": 1}
