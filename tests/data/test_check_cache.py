"""Audio checks run once: a second validation (another rank, a restart) decodes only clips that changed."""

import os

import pytest

from higgs_lora.data import validate
from higgs_lora.data.check_cache import AUDIO_CHECKS, AudioCheckCache
from higgs_lora.data.selection import select_samples


@pytest.fixture
def decoded(monkeypatch):
    seen = []
    real = validate.check_audio_files

    def spy(paths, *args, **kwargs):
        seen.extend(paths)
        return real(paths, *args, **kwargs)

    monkeypatch.setattr(validate, "check_audio_files", spy)
    return seen


def _summary(report):
    return [(i, s.ref_audio, s.target_audio) for i, s in report.samples], report.to_dict()


def test_unchanged_clips_are_not_decoded_again(sample_data_path, tmp_path, decoded):
    cache_file = tmp_path / AUDIO_CHECKS
    cache = AudioCheckCache(cache_file)
    first = validate.validate_file(sample_data_path, audio_cache=cache)
    cache.save()
    clips = len(decoded)
    assert clips > 0
    decoded.clear()
    again = AudioCheckCache(cache_file)
    second = validate.validate_file(sample_data_path, audio_cache=again)
    assert decoded == [] and again.hits == clips
    assert _summary(second) == _summary(first)
    # a clip rewritten since (new mtime) is checked again, and only it
    touched = first.samples[0][1].ref_audio
    st = os.stat(touched)
    os.utime(touched, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    validate.validate_file(sample_data_path, audio_cache=AudioCheckCache(cache_file))
    assert decoded == [touched]


def test_other_ranks_use_rank_zeros_checks(sample_data_path, tmp_path, decoded, monkeypatch):
    kept0, _, total0 = select_samples(str(sample_data_path), "sys", False, tmp_path)
    assert decoded and (tmp_path / AUDIO_CHECKS).exists()
    decoded.clear()
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    kept1, _, total1 = select_samples(str(sample_data_path), "sys", False, tmp_path)
    assert decoded == []
    assert total1 == total0 and [s.ref_audio for s in kept1] == [s.ref_audio for s in kept0]
