"""Synthetic clone samples for gpu-check: realistic lengths, codes that vary, written as WAV + ChatML."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import soundfile as sf

from ..data.sample import CloneSample

TEXT = "الْجَوُّ جَمِيلٌ الْيَوْمَ وَنَحْنُ نَتَعَلَّمُ أَشْيَاءَ جَدِيدَةً كُلَّ يَوْمٍ فِي الْمَدْرَسَةِ. "


def _clip(path: Path, seconds: float, rng) -> str:
    """Noise under a 4 Hz syllable-like envelope at 24 kHz: realistic length, codes that vary."""
    n = int(seconds * 24000)
    envelope = 0.5 + 0.5 * np.sin(2 * np.pi * 4 * np.arange(n) / 24000) ** 2
    sf.write(path, (0.1 * rng.standard_normal(n) * envelope).astype(np.float32), 24000)
    return str(path)


def make_samples(folder: Path, tag: str, spec, seed: int) -> list[CloneSample]:
    """spec: (count, reference seconds (lo, hi), target seconds (lo, hi), target characters (lo, hi))."""
    count, ref_s, tgt_s, chars = spec
    rng = np.random.default_rng(seed)
    out = []
    for i in range(count):
        k = int(rng.integers(chars[0], chars[1] + 1))
        text = (TEXT * (k // len(TEXT) + 2))[:k]
        out.append(
            CloneSample(
                ref_text=text[: max(1, k // 2)],
                ref_audio=_clip(folder / f"{tag}{i}_ref.wav", rng.uniform(*ref_s), rng),
                target_text=text,
                target_audio=_clip(folder / f"{tag}{i}_tgt.wav", rng.uniform(*tgt_s), rng),
                system_prompt="Generate speech in the provided voice.",
                speaker=f"{tag}{i}",
            )
        )
    return out


def write_chatml(samples: list[CloneSample], path: Path) -> str:
    rows = [
        {
            "messages": [
                {"role": "system", "content": s.system_prompt},
                {"role": "user", "content": s.ref_text},
                {"role": "assistant", "content": {"type": "audio", "audio_url": s.ref_audio}},
                {"role": "user", "content": s.target_text},
                {"role": "assistant", "content": {"type": "audio", "audio_url": s.target_audio}},
            ],
            "speaker": s.speaker,
        }
        for s in samples
    ]
    path.write_text(json.dumps(rows, ensure_ascii=False), encoding="utf-8")
    return str(path)
