"""Held-out samples for the eval loss: a deterministic split of the training file, by speaker when speakers
are known (so no voice is heard in both halves), by sample otherwise."""

from __future__ import annotations

import json
import os
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from ..data.sample import CloneSample

HELD_OUT = "held_out.jsonl"  # the --eval_split samples, in the run folder: what `eval --data` should score


@dataclass
class EvalSplit:
    train: list[CloneSample]
    eval: list[CloneSample]
    how: str  # one line for the start summary


def split_eval(samples: Sequence[CloneSample], fraction: float, seed: int = 42) -> EvalSplit:
    """Hold out about `fraction` of the samples; the same samples, seed and fraction give the same split.

    Whole speakers are held out (drawn in a seeded order until the held-out share reaches `fraction`)
    when every sample names its speaker and there are at least two; otherwise single samples are.
    Both halves keep at least one sample.
    """
    if not 0 < fraction < 1:
        raise ValueError(f"--eval_split must be between 0 and 1 (a fraction of the samples), got {fraction}")
    samples = list(samples)
    if len(samples) < 2:
        raise ValueError(f"--eval_split needs at least 2 samples, the training data has {len(samples)}")
    wanted = max(1, round(fraction * len(samples)))
    rng = random.Random(seed)
    speakers = sorted({s.speaker for s in samples if s.speaker is not None})
    if len(speakers) >= 2 and all(s.speaker is not None for s in samples):
        rng.shuffle(speakers)
        held, count = [], 0
        for speaker in speakers[:-1]:  # the last one always stays in training
            if count >= wanted:
                break
            held.append(speaker)
            count += sum(s.speaker == speaker for s in samples)
        held_set = set(held)
        return EvalSplit(
            train=[s for s in samples if s.speaker not in held_set],
            eval=[s for s in samples if s.speaker in held_set],
            how=f"by speaker: {len(held)} of {len(speakers)} speakers held out ({', '.join(sorted(held))})",
        )
    order = list(range(len(samples)))
    rng.shuffle(order)
    held_idx = set(order[: min(wanted, len(samples) - 1)])
    reason = "a single speaker" if all(s.speaker is not None for s in samples) else "speakers not named in every sample"
    return EvalSplit(
        train=[s for i, s in enumerate(samples) if i not in held_idx],
        eval=[s for i, s in enumerate(samples) if i in held_idx],
        how=f"by sample ({reason}): voices may be in both halves",
    )


def held_out(
    samples: Sequence[CloneSample], eval_data: str | None, eval_split: float, seed: int, system_prompt: str
) -> EvalSplit:
    """The training samples and the held-out ones from `--eval_data` or `--eval_split` (none if neither)."""
    if eval_data and eval_split:
        raise ValueError("give --eval_data or --eval_split, not both")
    if eval_data:
        from ..data.validate import load_samples

        return EvalSplit(train=list(samples), eval=load_samples(eval_data, system_prompt), how=f"from {eval_data}")
    if eval_split:
        return split_eval(samples, eval_split, seed)
    return EvalSplit(train=list(samples), eval=[], how="")


def write_held_out(samples: Sequence[CloneSample], output_dir: str | Path) -> Path:
    """The held-out samples as a data file any command reads (absolute audio paths: the run folder
    is not where the clips are)."""
    from ..data.convert import canonical_record

    path = Path(output_dir) / HELD_OUT
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [
        json.dumps(
            canonical_record(
                s.ref_text,
                os.path.abspath(s.ref_audio),
                s.target_text,
                os.path.abspath(s.target_audio),
                s.system_prompt,
                speaker=s.speaker,
            ),
            ensure_ascii=False,
        )
        for s in samples
    ]
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return path
