"""The path every corpus's clips take in `convert`: rows -> durations -> (reference, target) pairs.

A corpus reader (`corpora/`) yields `ClipRow`s; `probe_clips` reads each clip's duration from its header
(never its audio) and applies the duration window; `pair_clips` pairs clips within each speaker.
Every clip dropped on the way is counted in the ConvertReport with its reason.
"""

from __future__ import annotations

import os
import random
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from .audio_check import MAX_SECONDS, MIN_SECONDS
from .convert_report import ConvertReport


@dataclass(frozen=True)
class Clip:
    key: str  # how the corpus names the clip (metadata.csv's name, Common Voice's path, a Kaldi utterance id)
    path: str
    text: str
    speaker: str
    seconds: float


@dataclass(frozen=True)
class ClipRow:
    """One clip as a corpus reader found it, before its duration is known (`seconds` when the reader knows it)."""

    key: str
    path: str
    text: str
    speaker: str
    where: str  # for the report: "line 12", "validated.tsv line 40", "data/train-0.parquet row 7"
    seconds: float | None = None


@dataclass(frozen=True)
class DurationWindow:
    """Clips outside it are dropped before pairing (the defaults are validate's, so what is written validates)."""

    min_seconds: float = MIN_SECONDS
    max_seconds: float = MAX_SECONDS

    def reason(self, seconds: float) -> tuple[str, str] | None:
        if seconds < self.min_seconds:
            return "audio_too_short", f"{seconds:.3f} s, shorter than {self.min_seconds:g} s"
        if seconds > self.max_seconds:
            return "audio_too_long", f"{seconds:.1f} s, longer than {self.max_seconds:g} s"
        return None


def probe_clips(
    rows, source: str, report: ConvertReport, window: DurationWindow = DurationWindow(), progress: bool = True
) -> list[Clip]:
    """The rows' clips with their durations, read from each file's header (the audio is never loaded, so
    100k rows take the memory of 100k short records). Missing, undecodable and out-of-window clips are
    dropped and reported."""
    import soundfile as sf
    from tqdm import tqdm

    clips = []
    for row in tqdm(
        rows,
        desc=f"reading {Path(source).name or source}",
        unit=" clips",
        disable=None if progress else True,
        mininterval=1.0,
    ):
        seconds = row.seconds
        if seconds is None:
            if not Path(row.path).is_file():
                report.drop(
                    source, row.where, "audio_not_found", f"{row.key}: no such audio file {row.path}", row.speaker
                )
                continue
            try:
                with sf.SoundFile(row.path) as f:  # the header only; sf.info also formats strings, a third slower
                    seconds = f.frames / float(f.samplerate)
            except Exception as exc:
                report.drop(
                    source, row.where, "audio_unreadable", f"{row.path}: not decodable audio ({exc})", row.speaker
                )
                continue
        out = window.reason(seconds)
        if out is not None:
            report.drop(source, row.where, out[0], f"{row.key}: {out[1]}", row.speaker)
            continue
        clips.append(Clip(row.key, row.path, row.text, row.speaker, seconds))
    return clips


def pair_clips(
    clips: list[Clip],
    refs_per_target: int = 1,
    seed: int = 0,
    ref_min_seconds: float | None = None,
    ref_max_seconds: float | None = None,
    report: ConvertReport | None = None,
    source: str = "",
):
    """(reference, target) pairs within each speaker: every clip is a target once, with up to
    `refs_per_target` different references drawn from the speaker's other clips (never itself),
    optionally only references whose duration lies in the window. Same seed, same pairs."""
    if refs_per_target < 1:
        raise ValueError(f"--refs_per_target must be at least 1, got {refs_per_target}")
    by_speaker: dict[str, list[Clip]] = defaultdict(list)
    for clip in clips:
        by_speaker[clip.speaker].append(clip)
    rng = random.Random(seed)
    pairs = []
    for spk in sorted(by_speaker):
        group = by_speaker[spk]
        refs = [
            c
            for c in group
            if (ref_min_seconds is None or c.seconds >= ref_min_seconds)
            and (ref_max_seconds is None or c.seconds <= ref_max_seconds)
        ]
        # Where each file sits among the references, found once: comparing every target with every
        # reference took minutes for a 10,000-clip speaker. `candidates` keeps the references' order,
        # so the draw (and the pairs a seed gives) is unchanged.
        positions: dict[str, list[int]] = defaultdict(list)
        for i, ref in enumerate(refs):
            positions[os.path.abspath(ref.path)].append(i)
        for target in group:
            candidates, start = [], 0
            for i in positions.get(os.path.abspath(target.path), ()):
                candidates += refs[start:i]
                start = i + 1
            candidates += refs[start:]
            if not candidates:
                if report is not None:
                    if len(group) == 1:
                        report.drop(
                            source,
                            target.key,
                            "single_clip_speaker",
                            f"speaker {spk!r} has only this clip: no other clip to use as reference "
                            "(the speaker is unusable)",
                            spk,
                        )
                    else:
                        window = (
                            ""
                            if ref_min_seconds is None and ref_max_seconds is None
                            else f" within {ref_min_seconds or 0:g}-{ref_max_seconds or float('inf'):g} s"
                        )
                        report.drop(
                            source,
                            target.key,
                            "no_reference_candidate",
                            f"speaker {spk!r} has no other clip{window} to use as reference",
                            spk,
                        )
                continue
            for ref in rng.sample(candidates, min(refs_per_target, len(candidates))):
                pairs.append((ref, target))
    return pairs


@dataclass(frozen=True)
class Pairing:
    refs_per_target: int = 1
    seed: int = 0
    ref_min_seconds: float | None = None
    ref_max_seconds: float | None = None
