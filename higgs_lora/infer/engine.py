"""VoiceCloner: voice-cloning generation through the same prompt builder and collator as training.

One loaded model (+ unmerged adapter, `infer.adapter`), tokenizer and codec. A call builds its
inputs (`infer.inputs`), runs `HiggsAudioModel.generate` with the serve engine's stop strings and RAS
settings on the KV cache `infer.caches` chose (static buckets + CUDA graphs on CUDA, dynamic on
CPU), and turns the prompted audio stream into plain codes (`infer.stream`).

Batch: one sample at a time. Upstream `generate()` asserts batch size 1, the static caches and
CUDA graphs are captured at batch 1, and the per-sample stop (stream EOS) is decided inside
upstream's sampling loop; batching would mean re-implementing that loop.

Long texts are generated chunk by chunk (`infer.chunking`): the reference stays in every prompt,
the last N generated chunks follow it as context (user text + assistant audio turns, built by
`data.sample.build_messages`), and the chunks' audio is joined with a short crossfade.

The design's function entry point (`generate_arabic_speech`) is `infer.api`.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import replace
from typing import Sequence

import numpy as np
import torch

from ..constants import text_token_cap
from ..data.codes import AudioCodec, load_codec
from ..data.sample import CloneSample
from ..defaults import AUDIO_TOKENIZER
from ..model.load import default_device, load_model, load_tokenizer
from ..model.peft_base import base_model
from ..model.provenance import warn_if_other_base
from ..train.config import read_run_config
from . import caches
from .adapter import load_adapter
from .chunking import crossfade_concat, split_text
from .inputs import InferenceInputs, check_text
from .results import CloneResult, Generation
from .settings import ChunkSettings, GenerationSettings
from .stream import STOP_STRINGS, stream_stopped, strip_stream_tokens


class VoiceCloner:
    """One loaded model (+ unmerged adapter), tokenizer and codec; generates one sample at a time.

    cache: "static" (StaticCache buckets as boson's serve engine, CUDA graphs on CUDA), "dynamic"
    (plain generate), or "auto" (static on CUDA, dynamic on CPU).
    """

    def __init__(
        self,
        model,
        tokenizer,
        codec: AudioCodec,
        cache: str = "auto",
        cache_lengths: Sequence[int] = caches.DEFAULT_CACHE_LENGTHS,
        cuda_graphs: bool | None = None,
    ):
        self.model = model.eval()  # a HiggsAudioModel, or a PeftModel around one (adapter unmerged)
        # PEFT injects its LoRA layers into the base model's modules, so the base model's own
        # generate() (and its CUDA graphs) runs base + adapter.
        self.net = base_model(model)
        self.tokenizer = tokenizer
        self.codec = codec
        self.config = self.net.config
        self.device = next(model.parameters()).device
        self.net.set_audio_special_tokens(tokenizer)
        self.prepare_inputs = InferenceInputs(tokenizer, codec, self.config)
        self.cache_mode = caches.cache_mode(cache, self.device)
        self.kv_caches: OrderedDict | None = None
        self.cuda_graphs = False
        if self.cache_mode == "static":
            self.kv_caches = caches.build_caches(self.config, cache_lengths, self.device, self.net.dtype)
            on_cuda = self.device.type == "cuda"
            if on_cuda if cuda_graphs is None else cuda_graphs:
                caches.capture_graphs(self.net, self.kv_caches)
                self.cuda_graphs = True

    @classmethod
    def load(
        cls,
        model_path: str,
        lora_path: str | None = None,
        audio_tokenizer: str = AUDIO_TOKENIZER,
        device: str | None = None,
        dtype: str = "auto",
        cache: str = "auto",
        **kwargs,
    ) -> "VoiceCloner":
        device = device or default_device()
        model = load_model(model_path, device=device, dtype=dtype)
        if lora_path:
            warn_if_other_base(read_run_config(lora_path), model_path, f"adapter {lora_path}")
            model = load_adapter(model, lora_path)
        return cls(model, load_tokenizer(model_path), load_codec(audio_tokenizer, device=device), cache=cache, **kwargs)

    @torch.no_grad()
    def generate(
        self,
        sample: CloneSample,
        settings: GenerationSettings | None = None,
        context: Sequence[tuple[str, np.ndarray]] = (),
        codes: list[np.ndarray] | None = None,
    ) -> Generation:
        """One audio segment for `sample.target_text` (no chunking: see `clone`)."""
        settings = settings or GenerationSettings()
        inputs = self.prepare_inputs(sample, self.device, codes=codes, context=context)
        budget = (
            text_token_cap(sample.target_text, settings.max_new_tokens)
            if settings.cap_by_text
            else settings.max_new_tokens
        )
        buckets = caches.caches_for(self.kv_caches, inputs, budget)
        greedy = settings.temperature <= 0
        sequences, audio = self.net.generate(
            **inputs,
            max_new_tokens=budget,
            use_cache=True,
            stop_strings=STOP_STRINGS,
            tokenizer=self.tokenizer,
            do_sample=not greedy,
            temperature=None if greedy else settings.temperature,
            top_k=None if greedy else settings.top_k,
            top_p=None if greedy else settings.top_p,
            ras_win_len=settings.ras_win_len if settings.ras_win_len > 0 else None,
            ras_win_max_num_repeat=settings.ras_win_max_num_repeat,
            seed=settings.seed,
            **({"past_key_values_buckets": buckets} if buckets is not None else {}),
        )
        prompt_ids = inputs["input_ids"][0].tolist()
        text = self.tokenizer.decode(sequences[0, len(prompt_ids) :].tolist())
        n_audio = 1 + len(context)
        if not audio:
            empty = np.zeros((self.config.audio_num_codebooks, 0), dtype=np.int64)
            return Generation(empty, empty, text, False, prompt_ids, n_audio, budget)
        raw = audio[0]  # the segment the prompt's <|audio_out_bos|> opened
        stopped = stream_stopped(raw, self.config)
        codes_out = strip_stream_tokens(raw, self.config)
        return Generation(codes_out.cpu().numpy(), raw.cpu().numpy(), text, stopped, prompt_ids, n_audio, budget)

    def decode(self, codes: np.ndarray) -> np.ndarray:
        if codes.shape[1] == 0:
            return np.zeros(0, dtype=np.float32)
        return np.asarray(self.codec.decode(torch.as_tensor(codes).unsqueeze(0))[0, 0], dtype=np.float32)

    def clone(
        self, sample: CloneSample, settings: GenerationSettings | None = None, chunking: ChunkSettings | None = None
    ) -> tuple[np.ndarray, int, CloneResult]:
        """The whole target text: chunk by chunk (reference always in the prompt, the last
        `context_chunks` chunks as context), decoded and joined with a short crossfade."""
        settings = settings or GenerationSettings()
        chunking = chunking or ChunkSettings()
        check_text(sample.target_text)
        t0 = time.perf_counter()
        texts = split_text(sample.target_text, chunking.max_chars)
        if len(texts) == 1:
            texts = [sample.target_text]  # one chunk: the text exactly as training would see it
        ref_codes = self.prepare_inputs.reference_codes(sample)
        generations: list[Generation] = []
        context: list[tuple[str, np.ndarray]] = []
        for index, text in enumerate(texts):
            chunk_settings = settings if settings.seed is None else replace(settings, seed=settings.seed + index)
            keep = context[-chunking.context_chunks :] if chunking.context_chunks > 0 else []
            result = self.generate(replace(sample, target_text=text), chunk_settings, context=keep, codes=ref_codes)
            generations.append(result)
            if result.codes.shape[1]:
                context.append((text, result.codes))
        wav = crossfade_concat(
            [self.decode(g.codes) for g in generations], self.codec.sampling_rate, chunking.crossfade_s
        )
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        return wav, self.codec.sampling_rate, CloneResult(generations, texts, time.perf_counter() - t0)
