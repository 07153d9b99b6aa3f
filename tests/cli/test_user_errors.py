"""User mistakes the CLI answers with one line and exit 2 (issue 18): flags, empty files, folders for files."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from higgs_lora.cli import main

REPO = Path(__file__).resolve().parents[2]


def _usage_error(capsys, argv) -> str:
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    return capsys.readouterr().err


def test_a_mistyped_flag_gets_the_closest_one(capsys):
    err = _usage_error(capsys, ["train", "--train_data", "d.json", "--lerning_rate", "1e-4"])
    assert "unrecognized arguments: --lerning_rate 1e-4" in err
    assert "did you mean --learning_rate" in err


def test_every_subcommand_gets_suggestions(capsys):
    err = _usage_error(capsys, ["infer", "--chatml_file", "a", "--output_dir", "b", "--temprature", "0.5"])
    assert "did you mean --temperature" in err
    err = _usage_error(capsys, ["validate", "d.json", "--for_inferense"])
    assert "did you mean --for_inference" in err


def test_an_unknown_flag_far_from_any_gets_no_guess(capsys):
    err = _usage_error(capsys, ["validate", "d.json", "--zzzzzz"])
    assert "unrecognized arguments: --zzzzzz" in err and "did you mean" not in err


def test_train_without_train_data_is_a_usage_error_before_heavy_imports(tmp_path):
    # A fresh interpreter: the check must run before torch/transformers are imported (they take seconds).
    code = (
        "import sys\nfrom higgs_lora.cli import main\n"
        "try:\n    main(['train'])\nexcept SystemExit as e:\n"
        "    print('heavy', 'torch' in sys.modules or 'transformers' in sys.modules)\n    sys.exit(e.code)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=dict(os.environ, PYTHONPATH=str(REPO)),
        timeout=120,
    )
    assert proc.returncode == 2, proc.stderr
    assert "--train_data is required" in proc.stderr and "--quick_test" in proc.stderr
    assert "heavy False" in proc.stdout
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("steps", ["0", "-5"])
def test_train_max_steps_zero_is_refused(capsys, tmp_path, steps):
    err = _usage_error(
        capsys, ["train", "--train_data", "d.json", "--output_dir", str(tmp_path / "o"), "--max_steps", steps]
    )
    assert f"--max_steps {steps}" in err
    assert not (tmp_path / "o").exists()


def test_trainer_script_refuses_the_same_mistakes(tmp_path):
    proc = subprocess.run(
        [sys.executable, str(REPO / "trainer" / "train.py"), "--max_steps", "0", "--quick_test"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2 and "--max_steps 0" in proc.stderr


@pytest.mark.parametrize("content", ["[]", "", "   \n\n"])
def test_validate_on_a_file_without_samples_is_exit_2_one_line(tmp_path, capsys, content):
    data = tmp_path / "d.json"
    data.write_text(content, encoding="utf-8")
    assert main(["validate", str(data)]) == 2
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert err.startswith("error: ") and "holds no samples" in err and len(err.splitlines()) == 1
    assert "valid" not in captured.out


def test_validate_on_a_folder_says_folder_and_points_to_convert(tmp_path, capsys):
    clips = tmp_path / "clips"
    clips.mkdir()
    assert main(["validate", str(clips)]) == 2
    err = capsys.readouterr().err
    assert "is a folder" in err and "higgs-lora convert" in err and "not found" not in err


def test_train_data_folder_says_folder_and_points_to_convert(tmp_path):
    from higgs_lora.train.config import TrainConfig
    from higgs_lora.train.preflight import check_data_readable

    clips = tmp_path / "clips"
    clips.mkdir()
    with pytest.raises(FileNotFoundError) as info:
        check_data_readable(TrainConfig(train_data=str(clips)).train_data)
    assert "is a folder" in str(info.value) and "higgs-lora convert" in str(info.value)
    assert "no such file" not in str(info.value)
    with pytest.raises(FileNotFoundError, match="no such file"):
        check_data_readable(str(tmp_path / "missing.json"))


def test_clone_ref_audio_folder_says_folder(tmp_path, capsys):
    rc = main(
        [
            "clone",
            "--ref_audio",
            str(tmp_path),
            "--ref_text",
            "a",
            "--text",
            "b",
            "--output",
            str(tmp_path / "o.wav"),
            "--model_path",
            "tiny",
            "--audio_tokenizer",
            "tiny",
        ]
    )
    assert rc == 2
    err = capsys.readouterr().err
    assert "is a folder" in err and "no such file" not in err


def test_clone_unreadable_reference_uses_validates_reason_code(tmp_path, capsys):
    from higgs_lora.data.validate import CODES

    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF\x00\x00not a wav")
    rc = main(
        [
            "clone",
            "--ref_audio",
            str(bad),
            "--ref_text",
            "a",
            "--text",
            "b",
            "--output",
            str(tmp_path / "o.wav"),
            "--model_path",
            "tiny",
            "--audio_tokenizer",
            "tiny",
        ]
    )
    assert rc == 2
    err = capsys.readouterr().err
    assert "audio_unreadable" in err and "audio_unreadable" in CODES


def test_infer_output_dir_that_is_a_file_is_one_line(tmp_path, capsys, sample_data_path):
    target = tmp_path / "taken"
    target.write_text("x")
    assert (
        main(
            [
                "infer",
                "--chatml_file",
                str(sample_data_path),
                "--output_dir",
                str(target),
                "--model_path",
                "tiny",
                "--audio_tokenizer",
                "tiny",
            ]
        )
        == 2
    )
    err = capsys.readouterr().err.strip()
    assert "is a file, not a folder" in err and "Errno" not in err and len(err.splitlines()) == 1


def test_infer_chatml_file_folder_says_folder(tmp_path, capsys):
    assert (
        main(
            [
                "infer",
                "--chatml_file",
                str(tmp_path),
                "--output_dir",
                str(tmp_path / "o"),
                "--model_path",
                "tiny",
                "--audio_tokenizer",
                "tiny",
            ]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert "is a folder" in err and "higgs-lora convert" in err and "no such file" not in err
