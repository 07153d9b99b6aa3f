"""Sample layouts reduced to CloneSample components, every problem a reason code."""

import json
from pathlib import Path

import pytest
from chatml_records import audio_part, chatml_record

from higgs_lora.data.data_file import read_records
from higgs_lora.data.formats import SampleError, sample_from_record
from higgs_lora.data.sample import CloneSample

DEFAULT = "Default prompt."


def _parse(record, base=Path("/base"), require_target=True):
    return sample_from_record(record, base, DEFAULT, require_target)


def test_canonical_chatml_becomes_components_with_paths_relative_to_the_json(tmp_path):
    folder = tmp_path / "data"
    folder.mkdir()
    path = folder / "train.json"
    path.write_text(json.dumps([chatml_record(system="Speak.", target="/abs/target.wav")]), encoding="utf-8")

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
    assert err.value.reason == "no_reference_audio"
    assert [code for code, _ in err.value.errors] == ["no_reference_audio", "no_target_audio"]


@pytest.mark.parametrize("with_system", [True, False])
def test_four_message_design_sample_is_refused_with_a_fix(with_system):
    record = chatml_record(system="Speak." if with_system else None, n_turns=3)
    with pytest.raises(SampleError) as err:
        _parse(record)
    assert err.value.reason == "no_target_audio"
    assert "fifth message" in str(err.value)
    assert '"role": "assistant"' in str(err.value)


def test_last_assistant_message_that_is_text_is_no_target():
    record = chatml_record()
    record["messages"][-1]["content"] = "some text"
    with pytest.raises(SampleError) as err:
        _parse(record)
    assert err.value.reason == "no_target_audio"


@pytest.mark.parametrize(
    "roles, codes",
    [
        (["user", "user", "user", "assistant"], ["no_reference_audio"]),
        (
            ["assistant", "user", "assistant", "user"],
            ["no_reference_text", "no_reference_audio", "no_target_text", "no_target_audio"],
        ),  # message order
        (["user", "assistant", "user", "assistant", "user"], ["unknown_role"]),
        (["user", "assistant"], ["no_target_text", "no_target_audio"]),
        (["user", "system", "assistant", "user", "assistant"], ["unknown_role"]),
        (["user", "narrator", "assistant", "user", "assistant"], ["unknown_role"]),
    ],
)
def test_wrong_roles_get_every_code_that_applies(roles, codes):
    contents = {"user": "words", "assistant": audio_part("a.wav"), "system": "sys", "narrator": "x"}
    record = {"messages": [{"role": r, "content": contents[r]} for r in roles]}
    with pytest.raises(SampleError) as err:
        _parse(record)
    assert [code for code, _ in err.value.errors] == codes
    assert err.value.reason == codes[0]


@pytest.mark.parametrize(
    "record, code",
    [
        ("not an object", "not_an_object"),
        ([1, 2], "not_an_object"),
        ({"messages": "nope"}, "no_messages"),
        ({"messages": []}, "no_messages"),
        ({"unrelated": 1}, "no_messages"),
        ({"messages": [{"role": "system", "content": "a"}, {"role": "system", "content": "b"}]}, "unknown_role"),
        ({"messages": ["not a message"]}, "unknown_role"),
    ],
)
def test_malformed_records_get_their_code(record, code):
    with pytest.raises(SampleError) as err:
        _parse(record)
    assert err.value.reason == code


def test_reference_turn_must_be_audio():
    record = chatml_record()
    record["messages"][1]["content"] = "text instead of audio"
    with pytest.raises(SampleError) as err:
        _parse(record)
    assert err.value.reason == "no_reference_audio"


@pytest.mark.parametrize("where", ["top", "misc"])
def test_design_four_messages_with_target_audio_field(where):
    record = chatml_record(system="Speak.", n_turns=3)
    if where == "top":
        record["target_audio"] = "tgt.wav"
    else:
        record["misc"] = {"target_audio": "tgt.wav"}
    s = _parse(record)
    assert (s.ref_text, s.target_text, s.target_audio) == (
        "reference words",
        "target words",
        str(Path("/base/tgt.wav")),
    )


def test_public_trainer_layout_strips_the_instruction_and_keeps_texts():
    record = {
        "messages": [
            {"role": "system", "content": "Sys."},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "ref words"},
                    audio_part("r.wav"),
                    {"type": "text", "text": "Please speak this in the voice above: target words"},
                ],
            },
            {"role": "assistant", "content": [{"type": "text", "text": "target words"}, audio_part("t.wav")]},
        ]
    }
    s = _parse(record)
    assert s == CloneSample(
        "ref words", str(Path("/base/r.wav")), "target words", str(Path("/base/t.wav")), "Sys.", None
    )
    # without the assistant turn (inference input) the target text comes from the instruction
    s = _parse({"messages": record["messages"][1:2]}, require_target=False)
    assert (s.target_text, s.target_audio, s.system_prompt) == ("target words", None, DEFAULT)


def test_remote_audio_urls_are_kept_as_urls():
    record = chatml_record(target="https://example.org/t.wav")
    assert _parse(record).target_audio == "https://example.org/t.wav"


@pytest.mark.parametrize("which", [0, 2])
def test_empty_text_is_reported(which):
    record = chatml_record()
    record["messages"][which]["content"] = "   "
    with pytest.raises(SampleError) as err:
        _parse(record)
    assert err.value.reason == "empty_text"


def test_require_target_false_accepts_four_messages():
    s = _parse(chatml_record(n_turns=3), require_target=False)
    assert s.target_audio is None
    assert s.target_text == "target words"
    assert s.ref_audio == str(Path("/base/audio/r.wav"))
    # a full sample still keeps its target when it is not required
    assert _parse(chatml_record(), require_target=False).target_audio == str(Path("/base/t.wav"))


def test_text_content_objects_are_accepted():
    record = chatml_record(system=[{"type": "text", "text": "Typed system."}])
    record["messages"][1]["content"] = {"type": "text", "text": "typed ref"}
    record["messages"][2]["content"] = [audio_part("one.wav")]
    s = _parse(record)
    assert (s.system_prompt, s.ref_text, s.ref_audio) == ("Typed system.", "typed ref", str(Path("/base/one.wav")))


def test_system_message_wins_over_default_and_missing_system_uses_default():
    assert _parse(chatml_record(system="Mine.")).system_prompt == "Mine."
    assert _parse(chatml_record()).system_prompt == DEFAULT
    assert sample_from_record(chatml_record(), Path("/b"), "").system_prompt == ""
