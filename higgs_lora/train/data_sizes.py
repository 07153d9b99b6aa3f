"""What a data file asks of a GPU: positions per sample, for `higgs-lora plan --train_data`.

A sample's length is what the model sees (VoiceCloningDataset.lengths()): its prompt's text tokens
plus, for each clip, its code columns (frames at 25 per second, stream BOS/EOS and the delay
pattern's codebooks - 1 columns) in place of one placeholder token. Frames come from the audio
files' headers, so nothing is encoded; text tokens come from the model's tokenizer, or, where that
cannot be loaded (offline, not downloaded), from the UTF-8 byte count of the prompt, an upper bound
for a byte-level BPE tokenizer such as Llama 3's.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np

from ..constants import FRAMES_PER_SECOND
from .memory_guard import SampleSize

log = logging.getLogger(__name__)

TEMPLATE_TOKENS = 64  # byte fallback: the chat template's special and header tokens around five messages


@dataclass
class DataSizes:
    sizes: list[SampleSize]
    text_tokens_exact: bool  # False: counted as UTF-8 bytes (upper bound)

    def longest(self) -> SampleSize:
        return max(self.sizes, key=lambda s: s.length)

    def describe(self) -> list[str]:
        lengths = np.array([s.length for s in self.sizes])
        seconds = np.array([s.seconds for s in self.sizes])
        p50, p90, p99 = (int(np.percentile(lengths, q, method="higher")) for q in (50, 90, 99))
        speakers = len({s.speaker for s in self.sizes if s.speaker})
        lines = [
            f"data: {len(self.sizes)} samples, {seconds.sum() / 60:.1f} min of reference + target audio"
            + (f", {speakers} speakers" if speakers else ""),
            f"  positions per sample: median {p50:,}, 90th percentile {p90:,}, 99th {p99:,}, longest {lengths.max():,} "
            f"= {self.longest().describe()}",
        ]
        if not self.text_tokens_exact:
            lines.append("  (text counted as UTF-8 bytes, an upper bound: the model's tokenizer could not be loaded)")
        return lines


def seconds_to_columns(seconds: float, codebooks: int) -> int:
    """Sequence positions one clip of `seconds` takes: frames + stream BOS/EOS + delay pattern (codebooks - 1)."""
    return math.ceil(seconds * FRAMES_PER_SECOND) + codebooks + 1


def _tokenizer_or_none(base_model: str):
    from ..model.load import load_tokenizer

    try:
        return load_tokenizer(base_model)
    except Exception as err:  # offline and not cached, a folder without tokenizer files: fall back to bytes
        log.warning(
            "plan counts text as UTF-8 bytes: the tokenizer of %s cannot be loaded (%s)",
            base_model,
            str(err).splitlines()[0] if str(err) else type(err).__name__,
        )
        return None


def data_sizes(
    data_path: str,
    base_model: str,
    num_codebooks: int,
    system_prompt: str | None = None,
    text_normalization: str | None = None,
) -> DataSizes:
    """Every sample's length in positions (data file order); InvalidDataError for a bad file, as `train`."""
    from ..data.audio import audio_duration
    from ..data.sample import tokenize_chatml, training_chatml
    from ..data.validate import load_samples
    from ..defaults import DEFAULT_SYSTEM_PROMPT

    samples = load_samples(data_path, system_prompt or DEFAULT_SYSTEM_PROMPT, text_normalization=text_normalization)
    tokenizer = _tokenizer_or_none(base_model)
    durations: dict[str, float] = {}
    sizes = []
    for index, sample in enumerate(samples):
        if tokenizer is not None:
            input_ids, _, paths = tokenize_chatml(training_chatml(sample), tokenizer)
            text = len(input_ids) - len(paths)  # one placeholder per clip, replaced by its columns below
        else:
            paths = [sample.ref_audio, sample.target_audio]
            texts = (sample.system_prompt or "", sample.ref_text, sample.target_text)
            text = TEMPLATE_TOKENS + sum(len(t.encode("utf-8")) for t in texts)
        for path in paths:
            if path not in durations:  # a reference clip shared by many samples is read once
                durations[path] = audio_duration(path)
        seconds = [durations[p] for p in paths]
        length = text + sum(seconds_to_columns(s, num_codebooks) for s in seconds)
        sizes.append(SampleSize(index, sample.speaker, sum(seconds), length))
    return DataSizes(sizes, tokenizer is not None)
