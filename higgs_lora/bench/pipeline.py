"""The data side of a step: the code cache against live encoding, and length-bucketed batches' padding."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np

from ..constants import FRAMES_PER_SECOND
from .random_codec import random_higgs_codec

# Clip lengths (s) of the bench's cache measurement, and the mix for the padding measurement.
CACHE_PLAN = {
    "bench": dict(samples=4, ref_s=(1.5, 2.5), tgt_s=(1.5, 2.5), batch=2),
    "test": dict(samples=2, ref_s=(0.5, 0.6), tgt_s=(0.5, 0.6), batch=2),
}
MIX = dict(
    samples=2000,
    ref_s=(3.0, 10.0),
    target_median_s=5.0,
    target_s=(1.0, 20.0),
    text_tokens_per_s=4.0,
    prompt_tokens=40,
    frames_per_s=FRAMES_PER_SECOND,
    codebooks=8,
    max_tokens=8192,
)


def cache_speedup(plan_name: str = "bench", workdir: str | Path | None = None, make_codec=None) -> dict:
    """Batches from the dataset + collator reading the code cache, against the same batches with every clip
    encoded live by boson's real `HiggsAudioTokenizer` class (random weights, offline)."""
    from ..data.codes import encode_file
    from ..data.collator import DictCollator, build_collator
    from ..data.dataset import VoiceCloningDataset
    from ..model.load import load_tokenizer
    from .samples import make_samples
    from .step import SHAPES, build_config

    plan = CACHE_PLAN[plan_name]
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(workdir or tmp)
        samples = make_samples(work, "c", (plan["samples"], plan["ref_s"], plan["tgt_s"], (20, 40)), seed=1)
        codec = (make_codec or random_higgs_codec)()
        encode_file(codec, samples[0].ref_audio)  # first encode fits the codebooks' k-means: not part of either path
        config = build_config(SHAPES["test"])
        tokenizer = load_tokenizer("tiny")
        dataset = VoiceCloningDataset(
            samples, tokenizer, codec, num_codebooks=codec.num_codebooks, cache_dir=str(work / "cache")
        )  # builds the cache (encodes every clip once)
        collate = DictCollator(build_collator(config))
        order = list(range(len(dataset)))
        batches = [order[i : i + plan["batch"]] for i in range(0, len(order), plan["batch"])]

        passes = []
        for _ in range(4):  # the first pass warms the page cache and lazy imports: fastest of the rest
            t = time.perf_counter()
            for b in batches:
                collate([dataset[i] for i in b])
            passes.append(time.perf_counter() - t)
        cached = min(passes[1:])

        clips = [p for s in samples for p in (s.ref_audio, s.target_audio)]
        t = time.perf_counter()
        for path in clips:
            encode_file(codec, path)
        encoding = time.perf_counter() - t
        seconds = round(sum(_seconds(p) for p in clips), 2)
    live = encoding + cached  # live = the same dataset and collator work plus encoding each clip
    return {
        "value": round(live / cached, 1),
        "cached_s": round(cached, 4),
        "live_s": round(live, 3),
        "samples": plan["samples"],
        "clips": len(clips),
        "clip_seconds": {"reference": plan["ref_s"], "target": plan["tgt_s"]},
        "batch": plan["batch"],
        "codec": f"{getattr(codec, 'name', '')} ({type(getattr(codec, 'tokenizer', codec)).__name__})",
        "how": "batches from dataset + collator on the code cache vs the same plus live encoding of every clip",
        "audio_seconds": seconds,
    }


def _seconds(path) -> float:
    import soundfile as sf

    return sf.info(path).duration


def nonpad_fraction_bucketed(seed: int = 0) -> dict:
    """Non-pad share of the positions in token-budget batches (`data.sampler`) over a realistic length mix."""
    from ..data.sampler import TokenBudgetBatchSampler

    m = MIX
    rng = np.random.default_rng(seed)
    ref = rng.uniform(*m["ref_s"], m["samples"])
    target = np.clip(rng.lognormal(np.log(m["target_median_s"]), 0.6, m["samples"]), *m["target_s"])

    def columns(seconds):  # frames + stream BOS/EOS + the delay pattern's extra columns
        return np.round(seconds * m["frames_per_s"]).astype(int) + 2 + m["codebooks"] - 1

    text = m["prompt_tokens"] + np.round((ref + target) * m["text_tokens_per_s"]).astype(int)
    lengths = text + columns(ref) + columns(target)
    stats = TokenBudgetBatchSampler(lengths.tolist(), m["max_tokens"], seed=seed).stats()
    return {
        "value": stats["non_pad_fraction"],
        "random_batches_of_that_size": stats["non_pad_fraction_random_batches"],
        "mean_batch_size": stats["mean_batch_size"],
        "mix": dict(m),
        "mean_length": round(float(lengths.mean()), 1),
    }
