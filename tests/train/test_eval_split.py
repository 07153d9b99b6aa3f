"""train.eval_split: deterministic held-out samples, whole speakers when speakers are named."""

import pytest

from higgs_lora.data.sample import CloneSample
from higgs_lora.train.eval_split import held_out, split_eval


def _samples(speakers):
    return [CloneSample(f"ref {i}", f"r{i}.wav", f"text {i}", f"t{i}.wav", speaker=spk) for i, spk in enumerate(speakers)]


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
    assert split_eval(list(reversed(samples)), 0.2, seed=1).eval == list(reversed(first.eval))  # order-independent choice
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
