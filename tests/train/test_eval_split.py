"""train.eval_split: deterministic held-out samples, whole speakers when speakers are named."""

import pytest

from higgs_lora.data.sample import CloneSample
from higgs_lora.train.eval_split import held_out, split_eval


def _samples(speakers):
    return [
        CloneSample(f"ref {i}", f"r{i}.wav", f"text {i}", f"t{i}.wav", speaker=spk) for i, spk in enumerate(speakers)
    ]


SPEAKERS = ["a"] * 6 + ["b"] * 5 + ["c"] * 4 + ["d"] * 3 + ["e"] * 2  # 20 samples


def test_split_by_speaker_keeps_every_voice_on_one_side():
    samples = _samples(SPEAKERS)
    for fraction in (0.05, 0.2, 0.5):
        split = split_eval(samples, fraction, seed=3)
        train_voices, eval_voices = {s.speaker for s in split.train}, {s.speaker for s in split.eval}
        assert eval_voices and train_voices and not train_voices & eval_voices
        assert sorted(split.train + split.eval, key=lambda s: s.ref_audio) == sorted(samples, key=lambda s: s.ref_audio)
        assert len(split.eval) >= round(fraction * len(samples))  # whole speakers until the share is reached
        assert split.how.startswith("by speaker")


def test_split_is_deterministic_and_depends_on_the_seed():
    samples = _samples(SPEAKERS)
    first = split_eval(samples, 0.2, seed=1)
    assert split_eval(list(samples), 0.2, seed=1).eval == first.eval
    assert split_eval(list(reversed(samples)), 0.2, seed=1).eval == list(
        reversed(first.eval)
    )  # order-independent choice
    held = {frozenset(s.speaker for s in split_eval(samples, 0.05, seed=k).eval) for k in range(10)}
    assert len(held) > 1


def test_split_by_sample_when_speakers_are_not_known():
    samples = _samples([None] * 10 + ["a"] * 10)
    split = split_eval(samples, 0.2, seed=0)
    assert len(split.eval) == 4 and len(split.train) == 16
    assert "by sample" in split.how and "not named" in split.how
    one_voice = split_eval(_samples(["a"] * 5), 0.5, seed=0)
    assert len(one_voice.eval) == 2 and "single speaker" in one_voice.how


def test_split_keeps_at_least_one_sample_on_each_side():
    split = split_eval(_samples([None, None]), 0.9, seed=0)
    assert len(split.train) == 1 and len(split.eval) == 1
    split = split_eval(_samples(["a", "b"]), 0.9, seed=0)
    assert len(split.train) == 1 and len(split.eval) == 1
    assert len(split_eval(_samples([None] * 100), 0.001, seed=0).eval) == 1


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.1, 5])
def test_bad_fraction_is_a_clear_error(fraction):
    with pytest.raises(ValueError, match="--eval_split"):
        split_eval(_samples(SPEAKERS), fraction)


def test_held_out_from_a_file_or_a_split_not_both(sample_data_path):
    samples = _samples(SPEAKERS)
    assert held_out(samples, None, 0.0, 0, "").eval == []
    from_file = held_out(samples, str(sample_data_path), 0.0, 0, "sys")
    assert from_file.train == samples and len(from_file.eval) > 2 and from_file.how.startswith("from ")
    with pytest.raises(ValueError, match="not both"):
        held_out(samples, str(sample_data_path), 0.1, 0, "")


# --- the held-out samples are written out and suggested for scoring ----------------------------------


def test_eval_split_writes_the_held_out_samples_and_the_end_block_suggests_them(data4, tmp_path, capsys):
    from higgs_lora.data.validate import load_samples
    from higgs_lora.eval.run import EvalConfig, trained_on_warning
    from higgs_lora.train.eval_split import HELD_OUT, split_eval
    from higgs_lora.train.recipe import TrainConfig, train

    out = tmp_path / "run"
    train(
        TrainConfig(
            train_data=str(data4),
            output_dir=str(out),
            base_model="tiny",
            audio_tokenizer="tiny",
            batch_size=2,
            max_steps=1,
            eval_split=0.25,
            dataloader_num_workers=0,
            report_to="none",
        )
    )
    held = out / HELD_OUT
    expected = split_eval(load_samples(data4), 0.25, seed=TrainConfig.seed).eval
    written = load_samples(held)  # a data file every command reads
    assert [(s.target_text, s.target_audio, s.ref_audio) for s in written] == [
        (s.target_text, s.target_audio, s.ref_audio) for s in expected
    ]
    text = capsys.readouterr().out
    assert f"eval --data {held}" in text and f"eval --data {data4}" not in text
    assert "scores the training samples" not in text
    assert f"--data {held} --output_dir eval/" in (out / "README.md").read_text(encoding="utf-8")  # the card too
    # eval, pointed at the run, tells trained-on samples from held-out ones
    assert (
        trained_on_warning(EvalConfig(data=str(held), model_path="tiny", output_dir="e", lora_path=str(out)), written)
        is None
    )
    warning = trained_on_warning(
        EvalConfig(data=str(data4), model_path="tiny", output_dir="e", lora_path=str(out)), load_samples(data4)
    )
    assert warning.startswith(f"warning: {4 - len(written)} of 4 eval samples were in this model's training data")
    assert str(held) in warning


def test_without_a_held_out_set_the_end_block_says_the_score_is_on_training_data(data4, tmp_path, capsys):
    from higgs_lora.data.validate import load_samples
    from higgs_lora.eval.run import EvalConfig, trained_on_warning
    from higgs_lora.train.recipe import TrainConfig, train

    out = tmp_path / "run"
    train(
        TrainConfig(
            train_data=str(data4),
            output_dir=str(out),
            base_model="tiny",
            audio_tokenizer="tiny",
            batch_size=2,
            max_steps=1,
            dataloader_num_workers=0,
            report_to="none",
        )
    )
    assert "scores the training samples" in capsys.readouterr().out
    warning = trained_on_warning(
        EvalConfig(data=str(data4), model_path="tiny", output_dir="e", lora_path=str(out)), load_samples(data4)
    )
    assert "4 of 4 eval samples" in warning and "--eval_split" in warning


def test_the_printed_command_runs(tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path

    from higgs_lora.entry_point import runnable_command

    repo = Path(__file__).resolve().parents[2]
    env = dict(os.environ, PYTHONPATH=str(repo), PATH="/usr/bin:/bin")  # an environment never activated
    for path in ("/usr/bin:/bin", f"{Path(sys.executable).parent}:/usr/bin:/bin"):
        env["PATH"] = path
        command = subprocess.run(
            [sys.executable, "-c", "from higgs_lora.entry_point import runnable_command as r; print(r())"],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        if path.startswith(str(Path(sys.executable).parent)) and (Path(sys.executable).parent / "higgs-lora").is_file():
            assert command == "higgs-lora"
        proc = subprocess.run(
            f"{command} validate --help", shell=True, env=env, capture_output=True, text=True, cwd=tmp_path, timeout=120
        )
        assert proc.returncode == 0 and "--for_inference" in proc.stdout, (command, proc.stderr[-500:])
    assert runnable_command()
