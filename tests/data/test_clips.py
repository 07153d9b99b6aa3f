"""Pairing clips within each speaker: the seed decides the draw, the same seed the same pairs."""

import pytest

from higgs_lora.data.clips import Clip, pair_clips


def test_seed_changes_the_draw():
    clips = [Clip(f"c{i}", f"/x/c{i}.wav", "t", "s", 3.0) for i in range(12)]
    draws = {tuple((r.key, t.key) for r, t in pair_clips(clips, 1, seed)) for seed in range(5)}
    assert len(draws) > 1
    assert pair_clips(clips, 1, 7) == pair_clips(clips, 1, 7)
    with pytest.raises(ValueError, match="refs_per_target"):
        pair_clips(clips, 0)
