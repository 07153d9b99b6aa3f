"""The shipped sample set: real, audible, well-formed cloning pairs written offline."""

import json
import re
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from higgs_lora.data.sample_data import ASSETS, create_sample_data, load_manifest
from higgs_lora.defaults import DEFAULT_SYSTEM_PROMPT

ARABIC_LETTER = re.compile(r"[\u0621-\u064A]")
# espeak speech normalised to a -1 dBFS peak sits near 0.1 RMS; silence or a broken
# conversion would be orders of magnitude below this.
MIN_RMS = 0.02


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    out = tmp_path_factory.mktemp("sample") / "sample.json"
    path = create_sample_data(out)
    return path, json.loads(path.read_text(encoding="utf-8"))


def _audio(message) -> str:
    assert message["role"] == "assistant"
    assert message["content"]["type"] == "audio"
    return message["content"]["audio_url"]


def _clips_by_file():
    return {clip["file"]: clip for clip in load_manifest()["clips"]}


def test_returns_path_and_writes_a_list_of_canonical_samples(written):
    path, samples = written
    assert path.is_file()
    assert isinstance(samples, list) and samples
    for sample in samples:
        roles = [m["role"] for m in sample["messages"]]
        assert roles == ["system", "user", "assistant", "user", "assistant"]
        assert sample["messages"][0]["content"] == DEFAULT_SYSTEM_PROMPT
        assert sample["start_index"] == 4
        assert isinstance(sample["speaker"], str) and sample["speaker"]


def test_every_ordered_pair_within_a_speaker_once(written):
    _, samples = written
    per_speaker = {}
    for clip in load_manifest()["clips"]:
        per_speaker[clip["speaker"]] = per_speaker.get(clip["speaker"], 0) + 1
    assert len(samples) == sum(k * (k - 1) for k in per_speaker.values())
    keys = [(_audio(s["messages"][2]), _audio(s["messages"][4])) for s in samples]
    assert len(set(keys)) == len(keys)


def test_audio_paths_are_relative_and_real_24k_mono_speech(written):
    path, samples = written
    urls = {_audio(s["messages"][i]) for s in samples for i in (2, 4)}
    for url in urls:
        assert not Path(url).is_absolute(), url
        wav_path = path.parent / url
        assert wav_path.is_file(), url
        info = sf.info(str(wav_path))
        assert (info.samplerate, info.channels) == (24000, 1), url
        wav, _ = sf.read(str(wav_path), dtype="float32")
        assert 1.0 <= len(wav) / 24000 <= 4.0, url
        assert float(np.sqrt(np.mean(wav**2))) > MIN_RMS, url


def test_reference_and_target_are_different_clips_of_the_same_speaker(written):
    _, samples = written
    clips = _clips_by_file()
    for sample in samples:
        ref, target = (Path(_audio(sample["messages"][i])).name for i in (2, 4))
        assert ref != target
        assert clips[ref]["speaker"] == clips[target]["speaker"] == sample["speaker"]


def test_transcripts_match_the_manifest_and_the_language(written):
    _, samples = written
    clips = _clips_by_file()
    for sample in samples:
        for text_i, audio_i in ((1, 2), (3, 4)):
            text = sample["messages"][text_i]["content"]
            clip = clips[Path(_audio(sample["messages"][audio_i])).name]
            assert isinstance(text, str) and text.strip()
            assert text == clip["transcript"]
            if clip["language"] == "ar":
                assert ARABIC_LETTER.search(text), text
            else:
                assert not ARABIC_LETTER.search(text), text


def test_manifest_describes_the_shipped_clips():
    manifest = load_manifest()
    clips = manifest["clips"]
    assert manifest["sample_rate"] == 24000
    assert {c["language"] for c in clips} >= {"ar"}
    ar_speakers = {c["speaker"] for c in clips if c["language"] == "ar"}
    assert len(ar_speakers) >= 2
    total = 0
    for clip in clips:
        data = ASSETS.joinpath(clip["file"]).read_bytes()
        total += len(data)
        assert clip["espeak_command"].startswith("espeak-ng ")
        assert clip["transcript"] in clip["espeak_command"]
    assert total < 1.5e6


def test_refuses_to_overwrite_unless_asked(tmp_path):
    out = tmp_path / "set.json"
    create_sample_data(out)
    first = out.read_bytes()
    with pytest.raises(FileExistsError, match="overwrite"):
        create_sample_data(out)
    assert out.read_bytes() == first
    create_sample_data(out, overwrite=True)
    assert out.read_bytes() == first


def test_output_is_deterministic(tmp_path):
    a = create_sample_data(tmp_path / "a" / "set.json")
    b = create_sample_data(tmp_path / "b" / "set.json")
    assert a.read_bytes() == b.read_bytes()
    for wav in (a.parent / "set_audio").iterdir():
        assert wav.read_bytes() == (b.parent / "set_audio" / wav.name).read_bytes()


def test_n_samples_truncates_and_keeps_every_speaker(tmp_path):
    speakers = {c["speaker"] for c in load_manifest()["clips"]}
    out = create_sample_data(tmp_path / "few.json", n_samples=len(speakers))
    samples = json.loads(out.read_text(encoding="utf-8"))
    assert len(samples) == len(speakers)
    assert {s["speaker"] for s in samples} == speakers
    copied = {p.name for p in (tmp_path / "few_audio").iterdir()}
    assert copied == {Path(_audio(s["messages"][i])).name for s in samples for i in (2, 4)}
    for bad in (0, 10_000):
        with pytest.raises(ValueError, match="n_samples"):
            create_sample_data(tmp_path / f"bad{bad}.json", n_samples=bad)


def test_custom_and_empty_system_prompt(tmp_path):
    custom = json.loads(create_sample_data(tmp_path / "c.json", system_prompt="Speak.").read_text(encoding="utf-8"))
    assert all(s["messages"][0] == {"role": "system", "content": "Speak."} for s in custom)
    bare = json.loads(create_sample_data(tmp_path / "e.json", system_prompt="").read_text(encoding="utf-8"))
    for sample in bare:
        assert [m["role"] for m in sample["messages"]] == ["user", "assistant", "user", "assistant"]
        assert sample["start_index"] == 3
