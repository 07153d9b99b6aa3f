"""`higgs-lora tokenize` and the cache flags of train/infer, through the real CLI."""

import json

import numpy as np

from higgs_lora.cli import main
from higgs_lora.data.codes import TinyCodec
from higgs_lora.data.sample_data import create_sample_data


def test_tokenize_then_rerun_then_infer_from_the_cache(tmp_path, capsys, monkeypatch):
    data = create_sample_data(tmp_path / "d.json", n_samples=2)
    cache = tmp_path / "codes"
    assert (
        main(
            [
                "tokenize",
                str(data),
                "--audio_tokenizer",
                "tiny",
                "--cache_dir",
                str(cache),
                "--report",
                str(tmp_path / "r.json"),
            ]
        )
        == 0
    )
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["failed"] == {} and report["cached"] == report["total"] == report["encoded"] > 0
    capsys.readouterr()

    assert main(["tokenize", str(data), "--audio_tokenizer", "tiny", "--cache_dir", str(cache)]) == 0
    assert "encoded 0 now" in capsys.readouterr().out

    # inference reads the same codes from the cache and never runs the encoder
    calls = []
    monkeypatch.setattr(TinyCodec, "encode", lambda self, *a, **k: calls.append(a) or np.zeros((8, 1)))
    rc = main(
        [
            "infer",
            "--chatml_file",
            str(data),
            "--output_dir",
            str(tmp_path / "gen"),
            "--model_path",
            "tiny",
            "--audio_tokenizer",
            "tiny",
            "--max_new_tokens",
            "12",
            "--temperature",
            "0",
            "--ras_win_len",
            "0",
            "--cache_dir",
            str(cache),
            "--require_cache",
        ]
    )
    assert rc == 0 and calls == []
    assert len(json.loads((tmp_path / "gen" / "results.json").read_text())["samples"]) == 2


def test_require_cache_names_the_missing_count_and_the_tokenize_command(tmp_path, capsys):
    data = create_sample_data(tmp_path / "d.json", n_samples=2)
    rc = main(
        [
            "infer",
            "--chatml_file",
            str(data),
            "--output_dir",
            str(tmp_path / "gen"),
            "--model_path",
            "tiny",
            "--audio_tokenizer",
            "tiny",
            "--cache_dir",
            str(tmp_path / "empty"),
            "--require_cache",
        ]
    )
    err = capsys.readouterr().err
    assert rc == 2
    assert "error: 2 of 2 audio files are not in the code cache" in err
    assert f"higgs-lora tokenize {data} --audio_tokenizer tiny --cache_dir {tmp_path / 'empty'}" in err
    assert not (tmp_path / "gen").exists()


def test_tokenize_lists_a_clip_that_fails_and_exits_1(tmp_path, capsys, monkeypatch):
    data = create_sample_data(tmp_path / "d.json", n_samples=2)
    real = TinyCodec.encode
    bad = json.loads(data.read_text())[0]["messages"][-1]["content"]["audio_url"].split("/")[-1]

    def encode(self, path, sr=None):
        if str(path).endswith(bad):
            raise RuntimeError("cannot decode")
        return real(self, path, sr)

    monkeypatch.setattr(TinyCodec, "encode", encode)
    rc = main(["tokenize", str(data), "--audio_tokenizer", "tiny", "--cache_dir", str(tmp_path / "c")])
    out = capsys.readouterr()
    assert rc == 1
    assert "1 failed" in out.out and bad in out.err and "cannot decode" in out.err


def test_help_lists_the_cache_flags(capsys):
    import pytest

    for command, flags in [
        ("tokenize", ["DATA", "--audio_tokenizer", "--cache_dir", "--report"]),
        (
            "train",
            [
                "--cache_dir",
                "--require_cache",
                "--skip_invalid",
                "--max_bad_samples",
                "--max_tokens_per_batch",
                "--encode_whisper_embed",
            ],
        ),
        ("infer", ["--cache_dir", "--require_cache"]),
    ]:
        with pytest.raises(SystemExit):
            main([command, "--help"])
        out = capsys.readouterr().out
        assert [f for f in flags if f not in out] == []


def test_tokenize_encodes_a_set_whose_clip_validation_would_refuse(tmp_path, capsys):
    # a silent clip: training drops its sample with --skip_invalid, so tokenize must still cache the rest
    import soundfile as sf

    data = create_sample_data(tmp_path / "d.json", n_samples=2)
    records = json.loads(data.read_text())
    silent = tmp_path / "silent.wav"
    sf.write(silent, np.zeros(24000, dtype=np.float32), 24000)
    records[0]["messages"][-1]["content"]["audio_url"] = str(silent)
    data.write_text(json.dumps(records))
    assert main(["validate", str(data)]) == 1
    capsys.readouterr()
    assert (
        main(
            [
                "tokenize",
                str(data),
                "--audio_tokenizer",
                "tiny",
                "--cache_dir",
                str(tmp_path / "c"),
                "--report",
                str(tmp_path / "r.json"),
            ]
        )
        == 0
    )
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["failed"] == {} and report["cached"] == report["total"] == report["encoded"] == 4
