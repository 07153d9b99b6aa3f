"""convert: every input layout into canonical five-message JSONL that validates; pairing; no partial output."""

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from higgs_lora.cli import main
from higgs_lora.data.convert import convert
from higgs_lora.data.validate import load_samples, validate_file

SR = 16000


def _wav(path, seconds):
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(seconds * SR)) / SR
    sf.write(str(path), (0.3 * np.sin(2 * np.pi * 200 * t)).astype(np.float32), SR)
    return path


def _audio(url):
    return {"type": "audio", "audio_url": url}


@pytest.fixture()
def src(tmp_path):
    d = tmp_path / "src"
    _wav(d / "r.wav", 1.0)
    _wav(d / "t.wav", 1.2)
    return d


def _read(path):
    return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines()]


def _roles(record):
    return [m["role"] for m in record["messages"]]


def test_design_four_messages_fifth_message_flat_and_public_layouts(src, tmp_path):
    four = [
        {"role": "system", "content": "Speak."},
        {"role": "user", "content": "ref words"},
        {"role": "assistant", "content": _audio("r.wav")},
        {"role": "user", "content": "target words"},
    ]
    records = [
        {"messages": four, "target_audio": "t.wav", "speaker": "a"},
        {"messages": four, "misc": {"target_audio": "t.wav"}},
        {"messages": four + [{"role": "assistant", "content": _audio("t.wav")}], "id": "x1"},
        {
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "ref words"},
                        _audio("r.wav"),
                        {"type": "text", "text": "Say it in this voice: target words"},
                    ],
                },
                {"role": "assistant", "content": [{"type": "text", "text": "target words"}, _audio("t.wav")]},
            ]
        },
    ]
    (src / "mixed.json").write_text(json.dumps(records), encoding="utf-8")
    flat = {
        "ref_audio": "r.wav",
        "ref_text": "ref words",
        "target_audio": "t.wav",
        "target_text": "target words",
        "speaker": "b",
    }
    (src / "flat.jsonl").write_text(json.dumps(flat) + "\n" + json.dumps({**flat, "target_audio": None}) + "\n")

    out = tmp_path / "out" / "train.jsonl"
    report = convert([src / "mixed.json", src / "flat.jsonl"], out)
    assert report.converted == 5 and report.per_source == {str(src / "mixed.json"): 4, str(src / "flat.jsonl"): 1}
    assert [(d.item, d.reason) for d in report.dropped] == [("1", "no_target_audio")]
    written = _read(out)
    assert [_roles(r) for r in written] == [["system", "user", "assistant", "user", "assistant"]] * 5
    assert written[0]["messages"][0]["content"] == "Speak."
    assert (written[0]["speaker"], written[2]["id"], written[4]["speaker"]) == ("a", "x1", "b")
    # audio paths are relative to the output file and resolve to the source clips
    assert written[0]["messages"][2]["content"]["audio_url"] == "../src/r.wav"
    samples = load_samples(out)
    assert {(s.ref_text, s.target_text) for s in samples} == {("ref words", "target words")}  # instruction stripped
    assert {s.target_audio for s in samples} == {str(out.parent / "../src/t.wav")}
    assert validate_file(out).ok


def _folder(root, rows, header=None):
    root.mkdir(parents=True, exist_ok=True)
    lines = ([header] if header else []) + rows
    (root / "metadata.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return root


def test_folder_with_speakers_pairs_within_each_speaker_never_the_same_clip(tmp_path):
    root = tmp_path / "corpus"
    for name, sec in [("a1", 1), ("a2", 4), ("a3", 5), ("b1", 6), ("b2", 2), ("c1", 3)]:
        _wav(root / "clips" / f"{name}.wav", sec)
    rows = [f"clips/{n}.wav|نص {n}|{n[0]}" for n in ["a1", "a2", "a3", "b1", "b2", "c1"]] + ["clips/gone.wav|x|a"]
    _folder(root, rows, header="audio|text|speaker")
    out = tmp_path / "pairs.jsonl"
    report = convert([root], out, refs_per_target=2, seed=3)
    written = _read(out)
    # a: 3 targets x 2 refs, b: 2 targets x 1 ref (only one other clip), c: alone -> dropped
    assert report.converted == len(written) == 8
    assert sorted((d.reason, d.item) for d in report.dropped) == [
        ("audio_not_found", "line 8"),
        ("single_clip_speaker", "clips/c1.wav"),
    ]
    for r in written:
        ref, target = r["messages"][2]["content"]["audio_url"], r["messages"][4]["content"]["audio_url"]
        assert ref != target
        assert Path(ref).name[0] == Path(target).name[0] == r["speaker"]
        assert r["messages"][1]["content"] == f"نص {Path(ref).stem}"
        assert r["messages"][3]["content"] == f"نص {Path(target).stem}"
    targets = [(r["messages"][4]["content"]["audio_url"], r["messages"][2]["content"]["audio_url"]) for r in written]
    assert len(set(targets)) == len(targets)  # K different references per target

    again = tmp_path / "again.jsonl"
    convert([root], again, refs_per_target=2, seed=3)
    assert again.read_text() == out.read_text()  # deterministic per seed
    window = tmp_path / "window.jsonl"
    convert([root], window, refs_per_target=2, seed=3, ref_min_seconds=3, ref_max_seconds=5.5)
    refs = {Path(r["messages"][2]["content"]["audio_url"]).stem for r in _read(window)}
    assert refs == {"a2", "a3"}  # a1 (1 s), b1 (6 s), b2 (2 s) are outside the window
    assert validate_file(out).ok


def test_ljspeech_folder_with_a_fixed_speaker(tmp_path):
    root = tmp_path / "LJ"
    for i in range(3):
        _wav(root / "wavs" / f"LJ001-000{i}.wav", 1.0 + i)
    _folder(root, [f"LJ001-000{i}|Text {i} (raw)|text {i} spoken" for i in range(3)])
    out = tmp_path / "lj.jsonl"
    with pytest.raises(ValueError, match="--speaker"):
        convert([root], out)
    assert not out.exists()
    report = convert([root / "metadata.csv"], out, speaker="lj")
    written = _read(out)
    assert report.converted == 3 and {r["speaker"] for r in written} == {"lj"}
    assert written[0]["messages"][3]["content"].endswith("spoken")  # the normalised column is what is spoken
    assert validate_file(out).ok


def test_failure_leaves_no_partial_output_and_existing_output_is_kept(tmp_path, src, monkeypatch):
    good = src / "flat.jsonl"
    good.write_text(
        json.dumps({"ref_audio": "r.wav", "ref_text": "a", "target_audio": "t.wav", "target_text": "b"}) + "\n"
    )
    broken = src / "broken.jsonl"
    broken.write_text(good.read_text() + "{oops\n")
    out = tmp_path / "o.jsonl"
    with pytest.raises(ValueError, match="line 2"):
        convert([good, broken], out)
    assert not out.exists() and list(tmp_path.glob("*.tmp")) == [] and list(tmp_path.glob(".o.jsonl*")) == []

    out.write_text("precious")
    with pytest.raises(FileExistsError):
        convert([good], out)
    with pytest.raises(ValueError, match="line 2"):
        convert([good, broken], out, overwrite=True)
    assert out.read_text() == "precious"
    convert([good], out, overwrite=True)
    assert len(_read(out)) == 1


def test_cli_convert(tmp_path, src, capsys):
    flat = {"ref_audio": "r.wav", "ref_text": "a", "target_audio": "t.wav", "target_text": "b"}
    (src / "f.json").write_text(json.dumps([flat, {"ref_text": "a", "target_text": "b", "target_audio": "t.wav"}]))
    out = tmp_path / "c.jsonl"
    report = tmp_path / "rep.json"
    assert main(["convert", str(src / "f.json"), "--output", str(out), "--report", str(report)]) == 0
    text = capsys.readouterr().out
    assert "1 samples written" in text and "no_reference_audio" in text and "higgs-lora validate" in text
    assert json.loads(report.read_text())["dropped"][0]["reason"] == "no_reference_audio"
    assert main(["convert", str(src / "f.json"), "--output", str(out)]) == 2  # exists
    assert "--overwrite" in capsys.readouterr().err
    assert main(["convert", str(tmp_path / "nope"), "--output", str(tmp_path / "x.jsonl")]) == 2


def test_metadata_that_is_not_utf8_is_a_one_line_error_naming_the_file(tmp_path, capsys):
    corpus = tmp_path / "corpus"
    _wav(corpus / "a.wav", 1.0)
    (corpus / "metadata.csv").write_bytes("a.wav|مرحبا|spk\n".encode("cp1256"))
    assert main(["convert", str(corpus), "--output", str(tmp_path / "out.jsonl")]) == 2
    err = capsys.readouterr().err
    assert f"error: {corpus / 'metadata.csv'}: not UTF-8 text" in err and "Traceback" not in err
    assert not (tmp_path / "out.jsonl").exists()
