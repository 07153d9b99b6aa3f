"""convert on corpora built here offline: a Common Voice release (mp3 at 48 kHz), Kaldi data dirs (with
and without segments, pipe entries), Hugging Face parquet shards and a save_to_disk folder. Each output
validates, and each target text is the one the test recorded with that clip (checked against the test's
own tables, not the converter's)."""

import hashlib
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import soundfile as sf

from higgs_lora.bench.convert_corpus import make_release
from higgs_lora.cli import main
from higgs_lora.data import corpora
from higgs_lora.data.convert import convert
from higgs_lora.data.corpora.commonvoice import RELEASE_COLUMNS
from higgs_lora.data.validate import validate_file

# Diacritics (harakat, shadda, tanwin) and the quote characters Common Voice sentences carry.
ARABIC = [
    "ذَهَبَ الوَلَدُ إِلَى المَدْرَسَةِ",
    'قَالَ: "مَرْحَبًا بِكُمْ"',
    "الشَّمْسُ مُشْرِقَةٌ اليَوْمَ",
    "'كِتَابٌ' جَدِيدٌ",
    "هَلْ تَعْرِفُ الطَّرِيقَ؟",
    "السَّلَامُ عَلَيْكُمْ",
    '"اِقْرَأْ',
    "شُكْرًا جَزِيلًا",
]


def _tone(seconds, sr, freq=220.0):
    t = np.arange(int(seconds * sr)) / sr
    return (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def _write(path, seconds, sr, fmt=None, freq=220.0):
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), _tone(seconds, sr, freq), sr, format=fmt)
    return path


def _read(path):
    return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines()]


def _turns(record, out):
    m = record["messages"]
    base = Path(out).parent
    return (
        m[1]["content"],
        (base / m[2]["content"]["audio_url"]).resolve(),
        m[3]["content"],
        (base / m[4]["content"]["audio_url"]).resolve(),
    )


# ---------------------------------------------------------------- Common Voice


def _tsv(path, rows):
    lines = ["\t".join(RELEASE_COLUMNS)] + [
        "\t".join([r[0], r[1], "sid", r[2], "", str(r[3]), str(r[4])] + [""] * 4 + ["ar", ""]) for r in rows
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


@pytest.fixture()
def release(tmp_path):
    root = tmp_path / "cv-corpus-20.0" / "ar"
    clips = root / "clips"
    rows = []  # client_id, path, sentence, up, down
    for i, (spk, n) in enumerate([("aaa", 3), ("bbb", 2), ("ccc", 1)]):
        for k in range(n):
            name = f"common_voice_ar_{spk}{k}.mp3"
            _write(clips / name, 0.8 + 0.2 * k, 48000, "MP3", 200 + 40 * k)
            rows.append((spk, name, ARABIC[(3 * i + k) % len(ARABIC)], 2, 0))
    _write(clips / "down.mp3", 1.0, 48000, "MP3")
    _write(clips / "inval.mp3", 1.0, 48000, "MP3")
    _write(clips / "short.mp3", 0.1, 48000, "MP3")
    (clips / "broken.mp3").write_bytes(b"not audio at all" * 64)
    rows += [
        ("aaa", "down.mp3", "x", 1, 3),
        ("bbb", "inval.mp3", "y", 2, 0),
        ("aaa", "short.mp3", "قصير", 2, 0),
        ("bbb", "broken.mp3", "z", 2, 0),
        ("aaa", "gone.mp3", "w", 2, 0),
    ]
    _tsv(root / "validated.tsv", rows)
    _tsv(root / "invalidated.tsv", [("bbb", "inval.mp3", "y", 0, 2)])
    _tsv(root / "train.tsv", rows[:3])
    return root, {name: text for _, name, text, _, _ in rows}


def test_common_voice_release_by_the_quick_start_command(release, tmp_path, monkeypatch, capsys):
    root, texts = release
    monkeypatch.chdir(tmp_path)
    assert corpora.detect(str(root.parent)) == "commonvoice"  # cv-corpus-N/ holding one language folder
    assert (
        main(
            [
                "convert",
                str(root.parent),
                "--output",
                "data/train.jsonl",
                "--report",
                "rep.json",
                "--refs_per_target",
                "2",
            ]
        )
        == 0
    )
    out = tmp_path / "data" / "train.jsonl"
    written = _read(out)
    by_path = {(root / "clips" / name).resolve(): text for name, text in texts.items()}
    # aaa: 3 targets x 2 refs; bbb: 2 targets x 1 ref (one other clip); ccc: a single clip, unusable
    assert len(written) == 8
    for record in written:
        ref_text, ref, target_text, target = _turns(record, out)
        assert ref != target and ref.name[len("common_voice_ar_") :][:3] == target.name[16:19] == record["speaker"]
        assert (ref_text, target_text) == (by_path[ref], by_path[target])  # quotes and diacritics kept exactly
    report = json.loads((tmp_path / "rep.json").read_text(encoding="utf-8"))
    reasons = sorted((d["reason"], d["speaker"]) for d in report["dropped"])
    assert reasons == [
        ("audio_not_found", "aaa"),
        ("audio_too_short", "aaa"),
        ("audio_unreadable", "bbb"),
        ("down_voted", "aaa"),
        ("invalidated", "bbb"),
        ("single_clip_speaker", "ccc"),
    ]
    assert report["read"] == 11 and report["unusable_speakers"] == ["ccc"]
    assert report["per_speaker"]["aaa"] == {
        "read": 6,
        "written": 6,
        "dropped": {"down_voted": 1, "audio_too_short": 1, "audio_not_found": 1},
    }
    assert report["per_speaker"]["ccc"] == {"read": 1, "written": 0, "dropped": {"single_clip_speaker": 1}}
    text = capsys.readouterr().out
    assert "read 11 clips of 3 speakers" in text and "1 unusable (ccc)" in text
    assert validate_file(out).ok


def test_common_voice_split_and_a_tsv_named_directly(release, tmp_path):
    root, texts = release
    out = tmp_path / "train.jsonl"
    convert([root], out, split="train")  # rows[:3]: speaker aaa's three clips
    assert sorted(_turns(r, out)[3].name for r in _read(out)) == [f"common_voice_ar_aaa{k}.mp3" for k in range(3)]
    again = tmp_path / "again.jsonl"
    convert([root / "train.tsv"], again)
    assert again.read_text(encoding="utf-8") == out.read_text(encoding="utf-8")
    with pytest.raises(FileNotFoundError, match="dev.tsv.*it has invalidated, train, validated"):
        convert([root], tmp_path / "dev.jsonl", split="dev")


def test_common_voice_20k_rows(tmp_path):
    """20,000 rows, each its own file (hard links of one short mp3: every file is opened and its header
    read, as in a real release). docs/data.md gives the time of this size and of 100k rows, measured with
    `python -m higgs_lora.bench.convert_corpus`, which builds the same release."""
    root = tmp_path / "cv"
    texts = make_release(root, 20000, speakers=200)
    out = tmp_path / "big.jsonl"
    report = convert([root], out)
    assert report.converted == 20000 and report.read == 20000 and not report.dropped
    assert len(report.per_speaker) == 200 and {c["written"] for c in report.per_speaker.values()} == {100}
    for record in _read(out)[::997]:
        ref_text, ref, target_text, target = _turns(record, out)
        assert (ref_text, target_text) == (texts[ref.name], texts[target.name]) and ref != target


# ---------------------------------------------------------------- Kaldi


@pytest.fixture()
def kaldi_dir(tmp_path):
    d = tmp_path / "data" / "train"
    rec = tmp_path / "audio"
    _write(rec / "show1.wav", 6.0, 16000)
    _write(rec / "show2.flac", 4.0, 24000, "FLAC", 330)
    marker = tmp_path / "PIPE_WAS_RUN"
    d.mkdir(parents=True)
    (d / "wav.scp").write_text(
        f"show1 {rec / 'show1.wav'}\nshow2 {rec / 'show2.flac'}\n"
        f"show3 touch {marker} |\nshow4 touch {marker} && echo |\nshow5 sph2pipe -f wav x.sph |\n",
        encoding="utf-8",
    )
    segments = [
        ("u1", "show1", 0.0, 1.5),
        ("u2", "show1", 1.5, 3.25),
        ("u3", "show1", 3.25, 6.0),
        ("u4", "show2", 0.5, 2.0),
        ("u5", "show2", 2.0, -1),
        ("u6", "show3", 0, 1),
        ("u7", "show4", 0, 1),
        ("u8", "show5", 0, 1),
        ("u9", "show1", 0.0, 0.1),
        ("u10", "show2", 9.0, 10.0),
    ]
    (d / "segments").write_text("".join(f"{u} {r} {s} {e}\n" for u, r, s, e in segments))
    texts = {f"u{i}": ARABIC[i % len(ARABIC)] for i in range(1, 11)}
    (d / "text").write_text("".join(f"{u} {t}\n" for u, t in texts.items()), encoding="utf-8")
    spk = {
        "u1": "m1",
        "u2": "m1",
        "u3": "m1",
        "u4": "f2",
        "u5": "f2",
        "u6": "m1",
        "u7": "m1",
        "u8": "f2",
        "u9": "m1",
        "u10": "f2",
    }
    (d / "utt2spk").write_text("".join(f"{u} {s}\n" for u, s in spk.items()))
    return d, texts, {u: (r, s, e) for u, r, s, e in segments}, marker


def test_kaldi_segments_are_cut_from_their_recordings_and_pipes_never_run(kaldi_dir, tmp_path, capsys):
    d, texts, segments, marker = kaldi_dir
    assert corpora.detect(str(d)) == "kaldi"
    out = tmp_path / "out" / "kaldi.jsonl"
    assert main(["convert", str(d), "--output", str(out), "--report", str(tmp_path / "k.json")]) == 0
    assert not marker.exists()  # the pipe commands were not run
    report = json.loads((tmp_path / "k.json").read_text(encoding="utf-8"))
    assert sorted((x["item"], x["reason"]) for x in report["dropped"]) == [
        ("utterance u10", "segment_outside_recording"),
        ("utterance u6", "pipe_command"),
        ("utterance u7", "pipe_command"),
        ("utterance u8", "pipe_command"),
        ("utterance u9", "audio_too_short"),
    ]
    assert [n.split(": ", 1)[1].split(" recording")[0] for n in report["notes"]] == ["1", "2"]  # per program
    assert sum("pipe commands, refused" in line for line in capsys.readouterr().out.splitlines()) == 2
    written = _read(out)
    assert len(written) == 5
    originals = {
        r: sf.read(str(tmp_path / "audio" / name), dtype="float32")
        for r, name in (("show1", "show1.wav"), ("show2", "show2.flac"))
    }
    for record in written:
        for text, clip in ((_turns(record, out)[0], _turns(record, out)[1]), _turns(record, out)[2:]):
            utt = clip.name.split("-")[0]
            assert text == texts[utt]
            rec, start, end = segments[utt]
            wave, sr = originals[rec]
            cut, cut_sr = sf.read(str(clip), dtype="float32")
            expected = wave[round(start * sr) : len(wave) if end < 0 else round(end * sr)]
            assert cut_sr == sr and np.array_equal(cut, expected)  # the segment's own frames, nothing else
    assert validate_file(out).ok
    # a second convert re-uses the cut clips
    clips = sorted((tmp_path / "out" / corpora.CLIPS_DIR / "kaldi").iterdir())
    stamps = [p.stat().st_mtime_ns for p in clips]
    convert([d], out, overwrite=True)
    assert sorted((tmp_path / "out" / corpora.CLIPS_DIR / "kaldi").iterdir()) == clips
    assert [p.stat().st_mtime_ns for p in clips] == stamps


def test_kaldi_without_segments_and_with_spk2utt_only(tmp_path):
    d = tmp_path / "kd"
    d.mkdir()
    files = {
        f"s{k}_{i}": _write(tmp_path / "wav" / f"s{k}_{i}.wav", 1.0, 16000, None, 200 + 50 * i)
        for k in range(2)
        for i in range(2)
    }
    (d / "wav.scp").write_text("".join(f"{u} ../wav/{u}.wav\n" for u in files))  # relative to the data dir
    texts = {u: ARABIC[n] for n, u in enumerate(files)}
    (d / "text").write_text("".join(f"{u} {t}\n" for u, t in texts.items()), encoding="utf-8")
    (d / "spk2utt").write_text("s0 s0_0 s0_1\ns1 s1_0 s1_1\n")
    out = tmp_path / "k.jsonl"
    report = convert([d], out)
    assert report.converted == 4 and not (tmp_path / corpora.CLIPS_DIR).exists()  # whole files: nothing cut
    for record in _read(out):
        ref_text, ref, target_text, target = _turns(record, out)
        assert (ref_text, target_text) == (texts[ref.stem], texts[target.stem])
        assert ref.stem[:2] == target.stem[:2] == record["speaker"] and ref != target
    assert validate_file(out).ok


# ---------------------------------------------------------------- Hugging Face


def _audio_bytes(tmp_path, name, seconds, sr, fmt, freq):
    return _write(tmp_path / "src_audio" / name, seconds, sr, fmt, freq).read_bytes()


def _hf_rows(tmp_path):
    rows = []
    for i, (sr, fmt, ext) in enumerate([(16000, "WAV", "wav"), (24000, "FLAC", "flac"), (48000, "MP3", "mp3")] * 2):
        spk = f"sp{i % 2}"
        data = _audio_bytes(tmp_path, f"r{i}.{ext}", 0.9 + 0.1 * i, sr, fmt, 180 + 30 * i)
        rows.append(
            {"audio": {"bytes": data, "path": f"r{i}.{ext}"}, "sentence": ARABIC[i], "speaker_id": spk, "gender": "f"}
        )
    return rows


def _parquet_shards(folder, rows, n_shards=2):
    folder.mkdir(parents=True, exist_ok=True)
    per = len(rows) // n_shards
    for s in range(n_shards):
        part = rows[s * per : (s + 1) * per]
        table = pa.Table.from_pylist(part)
        pq.write_table(table, folder / f"train-{s:05d}-of-{n_shards:05d}.parquet", row_group_size=2)


def test_hugging_face_parquet_shards(tmp_path):
    rows = _hf_rows(tmp_path)
    ds = tmp_path / "ds"
    _parquet_shards(ds / "data", rows)
    _parquet_shards(
        ds / "data_test", [rows[0], rows[2]], 1
    )  # another split's shard, named test-...: not read by default
    (ds / "data_test" / "train-00000-of-00001.parquet").rename(ds / "data_test" / "test-00000-of-00001.parquet")
    assert corpora.detect(str(ds)) == "hf"
    out = tmp_path / "o" / "hf.jsonl"
    report = convert([ds], out)
    assert report.converted == 6 and report.read == 6
    by_hash = {hashlib.sha256(r["audio"]["bytes"]).hexdigest(): r for r in rows}
    for record in _read(out):
        ref_text, ref, target_text, target = _turns(record, out)
        ref_row = by_hash[hashlib.sha256(ref.read_bytes()).hexdigest()]
        target_row = by_hash[hashlib.sha256(target.read_bytes()).hexdigest()]
        assert (ref_text, target_text) == (ref_row["sentence"], target_row["sentence"])
        assert ref_row["speaker_id"] == target_row["speaker_id"] == record["speaker"] and ref != target
        assert target.suffix == Path(target_row["audio"]["path"]).suffix
    assert validate_file(out).ok
    # written once, by content: a second convert writes nothing new
    files = sorted(p for p in (tmp_path / "o" / corpora.CLIPS_DIR).rglob("*") if p.is_file())
    stamps = [p.stat().st_mtime_ns for p in files]
    assert len(files) == 6
    convert([ds], tmp_path / "o" / "again.jsonl")
    assert sorted(p for p in (tmp_path / "o" / corpora.CLIPS_DIR).rglob("*") if p.is_file()) == files
    assert [p.stat().st_mtime_ns for p in files] == stamps
    test_out = tmp_path / "o" / "test.jsonl"
    convert([ds], test_out, split="test")
    assert sorted(r["messages"][3]["content"] for r in _read(test_out)) == sorted(
        [rows[0]["sentence"], rows[2]["sentence"]]
    )


def test_hugging_face_columns_by_flag_and_a_save_to_disk_folder(tmp_path, capsys):
    rows = [{"clip": r["audio"], "transcription_ar": r["sentence"], "who": r["speaker_id"]} for r in _hf_rows(tmp_path)]
    saved = tmp_path / "saved" / "train"
    saved.mkdir(parents=True)
    table = pa.Table.from_pylist(rows)
    with pa.OSFile(str(saved / "data-00000-of-00001.arrow"), "wb") as sink:
        with pa.ipc.new_stream(sink, table.schema) as writer:  # what save_to_disk writes
            writer.write_table(table, max_chunksize=2)
    (saved / "state.json").write_text("{}")
    out = tmp_path / "s.jsonl"
    assert main(["convert", str(tmp_path / "saved"), "--output", str(out)]) == 2
    err = capsys.readouterr().err
    assert "no audio column" in err and "--audio_column" in err and "Traceback" not in err and not out.exists()
    assert (
        main(
            [
                "convert",
                str(tmp_path / "saved"),
                "--output",
                str(out),
                "--audio_column",
                "clip",
                "--text_column",
                "transcription_ar",
            ]
        )
        == 2
    )
    assert "--speaker_column" in capsys.readouterr().err
    one = tmp_path / "one.jsonl"  # a one-speaker dataset: --speaker names who speaks every clip
    assert (
        main(
            [
                "convert",
                str(tmp_path / "saved"),
                "--output",
                str(one),
                "--audio_column",
                "clip",
                "--text_column",
                "transcription_ar",
                "--speaker",
                "narrator",
            ]
        )
        == 0
    )
    assert len(_read(one)) == 6 and {r["speaker"] for r in _read(one)} == {"narrator"}
    assert (
        main(
            [
                "convert",
                str(tmp_path / "saved"),
                "--output",
                str(out),
                "--audio_column",
                "clip",
                "--text_column",
                "transcription_ar",
                "--speaker_column",
                "who",
                "--format",
                "hf",
            ]
        )
        == 0
    )
    by_hash = {hashlib.sha256(r["clip"]["bytes"]).hexdigest(): r for r in rows}
    written = _read(out)
    assert len(written) == 6
    for record in written:
        _, _, target_text, target = _turns(record, out)
        assert target_text == by_hash[hashlib.sha256(target.read_bytes()).hexdigest()]["transcription_ar"]
    assert validate_file(out).ok


def test_hub_dataset_id_goes_through_snapshot_download(tmp_path, monkeypatch):
    import huggingface_hub

    ds = tmp_path / "snapshot"
    _parquet_shards(ds / "data", _hf_rows(tmp_path))
    calls = []
    monkeypatch.setattr(huggingface_hub, "snapshot_download", lambda repo, **kw: calls.append((repo, kw)) or str(ds))
    monkeypatch.chdir(tmp_path)
    assert corpora.detect("someone/arabic-tts") == "hub"
    report = convert(["someone/arabic-tts"], tmp_path / "hub.jsonl")
    assert report.converted == 6 and calls[0][0] == "someone/arabic-tts" and calls[0][1]["repo_type"] == "dataset"
    convert(["someone/arabic-tts"], tmp_path / "hub_train.jsonl", split="train")
    assert calls[-1][1]["allow_patterns"] == ["*train*.parquet"]  # only the split's shards are downloaded

    def offline(repo, **kw):
        raise ConnectionError("no network")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", offline)
    assert main(["convert", "someone/arabic-tts", "--output", str(tmp_path / "x.jsonl")]) == 2


def test_a_folder_of_nothing_known_is_one_line(tmp_path, capsys):
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "notes.txt").write_text("hi")
    assert main(["convert", str(tmp_path / "junk"), "--output", str(tmp_path / "o.jsonl")]) == 2
    err = capsys.readouterr().err
    assert "none of the layouts convert reads" in err and "--format" in err


def test_hugging_face_clips_are_written_from_arrow_memory_not_copied_into_python(tmp_path):
    """Three 20 s clips (1.9 MB each): a reader that turned the audio column into Python bytes (to_pylist,
    as_py) would allocate at least one clip on the Python heap; written from Arrow's buffers, the Python
    side of a convert stays far below one clip."""
    import tracemalloc

    rows = []
    for i in range(3):
        data = _audio_bytes(tmp_path, f"long{i}.wav", 20.0, 48000, "WAV", 200 + 50 * i)
        rows.append({"audio": {"bytes": data, "path": f"long{i}.wav"}, "text": ARABIC[i], "speaker_id": "s"})
    clip_size = len(rows[0]["audio"]["bytes"])
    ds = tmp_path / "big"
    _parquet_shards(ds, rows, 1)
    del rows, data
    convert([ds], tmp_path / "warm.jsonl")  # imports and first-use caches, outside the measurement
    tracemalloc.start()
    try:
        convert([ds], tmp_path / "o1.jsonl", overwrite=True)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < clip_size / 4, (peak, clip_size)


def test_kaldi_segments_read_only_their_frames(tmp_path):
    """A 35 s recording cut into 1 s segments: decoding the recording whole (3.4 MB of float32) for a
    segment would show on the Python heap (numpy reports to tracemalloc); seeking and reading the
    segment's frames keeps the peak near one segment."""
    import tracemalloc

    d = tmp_path / "kd"
    d.mkdir()
    _write(tmp_path / "long.wav", 35.0, 24000)
    (d / "wav.scp").write_text(f"rec {tmp_path / 'long.wav'}\n")
    (d / "segments").write_text("".join(f"u{i} rec {3 * i} {3 * i + 1}\n" for i in range(10)))
    (d / "text").write_text("".join(f"u{i} {ARABIC[i % len(ARABIC)]}\n" for i in range(10)), encoding="utf-8")
    (d / "utt2spk").write_text("".join(f"u{i} s\n" for i in range(10)))
    whole = 35 * 24000 * 4
    tracemalloc.start()
    try:
        convert([d], tmp_path / "k.jsonl")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < whole / 4, (peak, whole)
    assert len(list((tmp_path / corpora.CLIPS_DIR / "kaldi").iterdir())) == 10
