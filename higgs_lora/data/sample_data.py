"""A small, offline voice-cloning data set built from the speech clips shipped in `assets/`.

The clips are real (synthetic) speech made once with espeak-ng by scripts/make_sample_assets.sh,
so creating the set needs neither network nor apt. Each sample pairs a reference utterance with a
different target utterance of the same speaker, in the canonical five-message ChatML layout.
"""

from __future__ import annotations

import json
import os
from importlib import resources
from itertools import permutations, zip_longest
from pathlib import Path

from ..defaults import DEFAULT_SYSTEM_PROMPT
from .convert import canonical_record

ASSETS = resources.files("higgs_lora.data").joinpath("assets")


def load_manifest() -> dict:
    """The shipped manifest: sample rate, generator, and one entry per clip."""
    return json.loads(ASSETS.joinpath("manifest.json").read_text(encoding="utf-8"))


def _pairs_by_speaker(clips: list[dict]) -> list[list[tuple[dict, dict]]]:
    speakers: dict[str, list[dict]] = {}
    for clip in clips:
        speakers.setdefault(clip["speaker"], []).append(clip)
    return [list(permutations(utts, 2)) for utts in speakers.values()]


def _sample(ref: dict, target: dict, audio_dir: str, system_prompt: str) -> dict:
    record = canonical_record(
        ref["transcript"],
        f"{audio_dir}/{ref['file']}",
        target["transcript"],
        f"{audio_dir}/{target['file']}",
        system_prompt,
        speaker=ref["speaker"],
    )
    record["start_index"] = len(record["messages"]) - 1
    return record


def create_sample_data(
    out_json: str | Path,
    n_samples: int | None = None,
    system_prompt: str = DEFAULT_SYSTEM_PROMPT,
    overwrite: bool = False,
) -> Path:
    """Write the sample set to `out_json` and its clips to `<out stem>_audio/` beside it.

    Every ordered (reference, target) pair of distinct utterances of one speaker is a sample;
    `n_samples` keeps the first n. Returns the path of the JSON file.
    """
    out_json = Path(out_json)
    if out_json.exists() and not overwrite:
        raise FileExistsError(f"{out_json} already exists; pass overwrite=True (--overwrite) to replace it")

    manifest = load_manifest()
    # Round-robin over speakers, so that even a truncated set holds every speaker.
    pairs = [p for group in zip_longest(*_pairs_by_speaker(manifest["clips"])) for p in group if p]
    if n_samples is not None:
        if n_samples < 1:
            raise ValueError(f"n_samples must be at least 1, got {n_samples}")
        if n_samples > len(pairs):
            raise ValueError(f"n_samples={n_samples}, but the shipped clips make only {len(pairs)} samples")
        pairs = pairs[:n_samples]

    audio_dir = f"{out_json.stem}_audio"
    (out_json.parent / audio_dir).mkdir(parents=True, exist_ok=True)
    used = {clip["file"] for pair in pairs for clip in pair}
    for name in sorted(used):
        (out_json.parent / audio_dir / name).write_bytes(ASSETS.joinpath(name).read_bytes())

    samples = [_sample(ref, target, audio_dir, system_prompt) for ref, target in pairs]
    # Written beside the target then renamed, so an interrupted run never leaves a truncated file.
    tmp = out_json.with_name(out_json.name + ".tmp")
    tmp.write_text(json.dumps(samples, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, out_json)
    return out_json
