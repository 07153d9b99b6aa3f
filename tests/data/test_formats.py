"""Readers: accepted file layouts and sample layouts, reduced to CloneSample components."""

import json
from pathlib import Path

import pytest

from higgs_lora.data.formats import DataFileError, SampleError, read_records, sample_from_record
from higgs_lora.data.sample import CloneSample

DEFAULT = "Default prompt."


def _audio(url):
    return {"type": "audio", "audio_url": url}


def _record(system=None, n_turns=4, target="t.wav"):
    messages = [] if system is None else [{"role": "system", "content": system}]
    messages += [
        {"role": "user", "content": "reference words"},
        {"role": "assistant", "content": _audio("audio/r.wav")},
        {"role": "user", "content": "target words"},
        {"role": "assistant", "content": _audio(target)},
    ][:n_turns]
    return {"messages": messages, "speaker": "spk1"}


def _parse(record, base=Path("/base"), require_target=True):
    return sample_from_record(record, base, DEFAULT, require_target)


def test_canonical_chatml_becomes_components_with_paths_relative_to_the_json(tmp_path):
    folder = tmp_path / "data"
    folder.mkdir()
    path = folder / "train.json"
    path.write_text(json.dumps([_record(system="Speak.", target="/abs/target.wav")]), encoding="utf-8")

    (record,) = read_records(path)
    sample = sample_from_record(record, path.parent, DEFAULT)

    assert sample == CloneSample(
        ref_text="reference words",
        ref_audio=str(folder / "audio" / "r.wav"),
        target_text="target words",
        target_audio="/abs/target.wav",  # absolute paths are kept
        system_prompt="Speak.",
        speaker="spk1",
    )


def test_sample_data_file_parses_to_existing_files(sample_data_path):
    records = read_records(sample_data_path)
    samples = [sample_from_record(r, sample_data_path.parent, DEFAULT) for r in records]
    assert len(samples) == len(records) > 0
    for s in samples:
        assert Path(s.ref_audio).is_file() and Path(s.target_audio).is_file()
        assert s.ref_audio != s.target_audio


@pytest.mark.parametrize("layout", ["list", "samples", "jsonl", "single"])
def test_file_layouts_are_all_read(tmp_path, layout):
    records = [_record(), _record(system="x")]
    path = tmp_path / "d.json"
    if layout == "list":
        path.write_text(json.dumps(records))
    elif layout == "samples":
        path.write_text(json.dumps({"samples": records, "version": 1}))
    elif layout == "jsonl":
        path.write_text("\n".join(json.dumps(r) for r in records) + "\n\n")
    else:
        records = records[:1]
        path.write_text(json.dumps(records[0]))
    assert read_records(path) == records


def test_missing_and_malformed_files_are_named(tmp_path):
    with pytest.raises(DataFileError, match="absent.json"):
        read_records(tmp_path / "absent.json")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"messages": []}\n{not json\n')
    with pytest.raises(DataFileError, match="line 2") as err:
        read_records(bad)
    assert "bad.jsonl" in str(err.value)
    scalar = tmp_path / "scalar.json"
    scalar.write_text('{"foo": 1}')
    with pytest.raises(DataFileError, match="scalar.json"):
        read_records(scalar)


def test_flat_record(tmp_path):
    record = {"ref_text": "a", "ref_audio": "r.wav", "target_text": "b", "target_audio": "t.wav", "speaker": "s"}
    s = sample_from_record(record, tmp_path, DEFAULT)
    assert s == CloneSample("a", str(tmp_path / "r.wav"), "b", str(tmp_path / "t.wav"), DEFAULT, "s")
    s = sample_from_record({**record, "system_prompt": ""}, tmp_path, DEFAULT)
    assert s.system_prompt == ""  # explicit empty prompt (no system turn) is respected
    with pytest.raises(SampleError) as err:
        sample_from_record({k: v for k, v in record.items() if k != "target_audio"}, tmp_path, DEFAULT)
    assert err.value.reason == "no_target_audio"
    with pytest.raises(SampleError) as err:
        sample_from_record({"ref_text": "a", "target_text": "b"}, tmp_path, DEFAULT)
    assert err.value.reason == "bad_structure" and "ref_audio" in str(err.value)


@pytest.mark.parametrize("with_system", [True, False])
def test_four_message_design_sample_is_refused_with_a_fix(with_system):
    record = _record(system="Speak." if with_system else None, n_turns=3)
    with pytest.raises(SampleError) as err:
        _parse(record)
    assert err.value.reason == "no_target_audio"
    assert "fifth message" in str(err.value)
    assert '"role": "assistant"' in str(err.value)


def test_last_assistant_message_that_is_text_is_no_target():
    record = _record()
    record["messages"][-1]["content"] = "some text"
    with pytest.raises(SampleError) as err:
        _parse(record)
    assert err.value.reason == "no_target_audio"


@pytest.mark.parametrize(
    "roles",
    [
        ["user", "user", "user", "assistant"],
        ["assistant", "user", "assistant", "user"],
        ["user", "assistant", "user", "assistant", "user"],
        ["user", "assistant"],
        ["user", "system", "assistant", "user", "assistant"],
    ],
)
def test_wrong_roles_are_bad_structure(roles):
    contents = {"user": "words", "assistant": _audio("a.wav"), "system": "sys"}
    record = {"messages": [{"role": r, "content": contents[r]} for r in roles]}
    with pytest.raises(SampleError) as err:
        _parse(record)
    assert err.value.reason == "bad_structure"


@pytest.mark.parametrize(
    "record",
    [
        "not an object",
        {"messages": "nope"},
        {"unrelated": 1},
        {"messages": [{"role": "system", "content": "a"}, {"role": "system", "content": "b"}]},
    ],
)
def test_malformed_records_are_bad_structure(record):
    with pytest.raises(SampleError) as err:
        _parse(record)
    assert err.value.reason == "bad_structure"


def test_reference_turn_must_be_audio():
    record = _record()
    record["messages"][1]["content"] = "text instead of audio"
    with pytest.raises(SampleError) as err:
        _parse(record)
    assert err.value.reason == "bad_structure"


@pytest.mark.parametrize("which", [0, 2])
def test_empty_text_is_reported(which):
    record = _record()
    record["messages"][which]["content"] = "   "
    with pytest.raises(SampleError) as err:
        _parse(record)
    assert err.value.reason == "empty_text"


def test_require_target_false_accepts_four_messages():
    s = _parse(_record(n_turns=3), require_target=False)
    assert s.target_audio is None
    assert s.target_text == "target words"
    assert s.ref_audio == str(Path("/base/audio/r.wav"))
    # a full sample still keeps its target when it is not required
    assert _parse(_record(), require_target=False).target_audio == str(Path("/base/t.wav"))


def test_text_content_objects_are_accepted():
    record = _record(system=[{"type": "text", "text": "Typed system."}])
    record["messages"][1]["content"] = {"type": "text", "text": "typed ref"}
    record["messages"][2]["content"] = [_audio("one.wav")]
    s = _parse(record)
    assert (s.system_prompt, s.ref_text, s.ref_audio) == ("Typed system.", "typed ref", str(Path("/base/one.wav")))


def test_system_message_wins_over_default_and_missing_system_uses_default():
    assert _parse(_record(system="Mine.")).system_prompt == "Mine."
    assert _parse(_record()).system_prompt == DEFAULT
    assert sample_from_record(_record(), Path("/b"), "").system_prompt == ""


def test_single_line_jsonl_with_a_flat_record(tmp_path):
    record = {"ref_text": "a", "ref_audio": "r.wav", "target_text": "b", "target_audio": "t.wav"}
    path = tmp_path / "one.jsonl"
    path.write_text(json.dumps(record) + "\n")
    assert read_records(path) == [record]


def test_utf8_bom_is_accepted(tmp_path):
    records = [_record()]
    path = tmp_path / "bom.json"
    path.write_text("\ufeff" + json.dumps(records), encoding="utf-8")
    assert read_records(path) == records
