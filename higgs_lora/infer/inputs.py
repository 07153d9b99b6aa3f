"""The model-free half of inference: a cloning sample (+ earlier chunks as context) -> the collated
inputs of `HiggsAudioModel.generate`, and the check that refuses an empty target text.

The prompt is `data.sample.inference_prompt` (the training ChatML up to the target's
<|audio_out_bos|>), the reference audio is encoded by the same codec call as the training code
cache (`data.codes.encode_file`), and the batch comes from `data.collator.build_collator`, as in
boson's serve engine. One sample per batch (see `infer.engine` for why).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from ..data.codes import AudioCodec, encode_file
from ..data.collator import batch_to_inputs, build_collator, make_chatml_sample
from ..data.formats import SampleError
from ..data.sample import CloneSample, inference_prompt


class InferenceInputs:
    """Model-free half of inference: sample (+ context chunks) -> collated generate() inputs."""

    def __init__(self, tokenizer, codec: AudioCodec, config):
        self.tokenizer = tokenizer
        self.codec = codec
        self.collator = build_collator(config)

    def reference_codes(self, sample: CloneSample) -> list[np.ndarray]:
        _, paths = inference_prompt(sample, self.tokenizer)
        return [encode_file(self.codec, p) for p in paths]

    def __call__(
        self,
        sample: CloneSample,
        device: torch.device | str = "cpu",
        codes: list[np.ndarray] | None = None,
        context: Sequence[tuple[str, np.ndarray]] = (),
    ) -> dict:
        """`codes`: the reference codes if already encoded (see `reference_codes`). `context`: earlier
        chunks as (text, generated codes (C, T)), placed after the reference by the prompt builder."""
        turns = [(text, f"generated-chunk-{i}") for i, (text, _) in enumerate(context)]
        prompt_ids, paths = inference_prompt(sample, self.tokenizer, turns)
        if codes is None:
            codes = [encode_file(self.codec, p) for p in paths[: len(paths) - len(turns)]]
        chatml = make_chatml_sample(prompt_ids, None, [*codes, *(c for _, c in context)])
        inputs = batch_to_inputs(self.collator([chatml]))
        return {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in inputs.items()}


def check_text(text: str) -> None:
    """The API and the CLI refuse what validation refuses, with its reason code."""
    if not isinstance(text, str) or not text.strip():
        raise SampleError("empty_text", "empty_text: the target text is empty or whitespace only; nothing to say")
