"""Voice-cloning generation through the same prompt builder and collator as training.

The prompt is `data.sample.inference_prompt` (the training ChatML up to the target's
<|audio_out_bos|>), the reference audio is encoded by the same codec call as the training code
cache, and the batch comes from `data.dataset.build_collator`, as in boson's serve engine. The
model then runs `HiggsAudioModel.generate` with the serve engine's stop strings and RAS settings;
the delay pattern is reverted and the stream BOS/EOS columns stripped before decoding.

Speed: on CUDA, generation runs through static KV-cache buckets (one `StaticCache` per length,
layers = text layers + DualFFN layers) with CUDA graphs captured once per loaded model
(`HiggsAudioModel.capture_model`), the same mechanism as boson's serve engine; the dynamic cache
(plain `generate`) is 4-6x slower there. On CPU the dynamic cache is used (the static path works
there too and gives the same codes; the tests run it without graphs).

Batch: one sample at a time. Upstream `generate()` asserts batch size 1, the static caches and
CUDA graphs are captured at batch 1, and the per-sample stop (stream EOS) is decided inside
upstream's sampling loop; batching would mean re-implementing that loop.

Adapters are served unmerged (PEFT forward, adapter weights in fp32): nothing is rounded into
bf16 base weights.

Long texts are generated chunk by chunk (`infer.chunking`): the reference stays in every prompt,
the last N generated chunks follow it as context (user text + assistant audio turns, built by
`data.sample.build_messages`), and the chunks' audio is joined with a short crossfade.
"""

from __future__ import annotations

import logging
import os
import time
from collections import OrderedDict
from copy import deepcopy
from dataclasses import dataclass, replace
from typing import Sequence

import numpy as np
import torch
from boson_multimodal.model.higgs_audio.utils import revert_delay_pattern

from ..constants import text_token_cap
from ..data.codes import AudioCodec, encode_file, load_codec
from ..data.dataset import batch_to_inputs, build_collator, make_chatml_sample
from ..data.formats import SampleError
from ..data.sample import CloneSample, inference_prompt
from ..data.text import normalize_sample
from ..defaults import AUDIO_TOKENIZER
from ..model.load import default_device, load_model, load_tokenizer
from ..model.provenance import warn_if_other_base
from ..train.config import read_run_config
from .chunking import DEFAULT_CHUNK_MAX_CHARS, DEFAULT_CONTEXT_CHUNKS, DEFAULT_CROSSFADE_S, crossfade_concat, split_text

log = logging.getLogger(__name__)

# The serve engine's default buckets; the sequence (prompt with its audio columns + new tokens) must
# fit the largest, or that call falls back to the dynamic cache.
DEFAULT_CACHE_LENGTHS = (1024, 4096, 8192)

# The serve engine stops at <|end_of_text|> / <|eot_id|>. A cloning call wants exactly the one audio
# segment its prompt opened, so it also stops where that stream closes (<|audio_eos|> follows the
# all-EOS column); otherwise a model could write text and open further segments.
UPSTREAM_STOP_STRINGS = ["<|end_of_text|>", "<|eot_id|>"]
STOP_STRINGS = ["<|audio_eos|>", *UPSTREAM_STOP_STRINGS]


@dataclass
class GenerationSettings:
    """temperature 0 means greedy. RAS = repetition-aware sampling (upstream default 7 / 2; 0 disables)."""

    max_new_tokens: int = 2048  # one audio column per token: 2048 is about 80 s of audio
    temperature: float = 0.3
    top_k: int | None = 50
    top_p: float = 0.95
    ras_win_len: int = 7
    ras_win_max_num_repeat: int = 2
    seed: int | None = None
    # Also stop at a cap from the chunk's text length (constants.text_token_cap).
    cap_by_text: bool = True


@dataclass
class ChunkSettings:
    """Long text: chunks of at most `max_chars` characters (0 = never split), the last
    `context_chunks` generated chunks kept in the prompt, `crossfade_s` seconds of overlap."""

    max_chars: int = DEFAULT_CHUNK_MAX_CHARS
    context_chunks: int = DEFAULT_CONTEXT_CHUNKS
    crossfade_s: float = DEFAULT_CROSSFADE_S


@dataclass
class Generation:
    codes: np.ndarray  # (num_codebooks, T): delay reverted, stream BOS/EOS removed
    raw_codes: np.ndarray  # (num_codebooks, T + num_codebooks + 1): as generated, BOS column first
    text: str
    stopped: bool  # the model closed the stream with its EOS (not cut by max_new_tokens)
    prompt_ids: list[int]
    prompt_audio_segments: int = 1  # the reference + context chunks in the prompt
    max_new_tokens: int = 0  # the budget this call had (the flag, capped by the text length)


@dataclass
class CloneResult:
    """A whole target text: its chunks' generations in order."""

    chunks: list[Generation]
    texts: list[str]
    seconds: float = 0.0  # wall-clock time of generation + decoding

    @property
    def codes(self) -> np.ndarray:
        return np.concatenate([g.codes for g in self.chunks], axis=1)

    @property
    def frames(self) -> int:
        return int(sum(g.codes.shape[1] for g in self.chunks))

    @property
    def stopped(self) -> bool:
        """Every chunk ended at its stream EOS (none was cut by its token budget)."""
        return all(g.stopped for g in self.chunks)


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


def merged_length(inputs: dict) -> int:
    """Positions the prompt takes in the KV cache: each audio placeholder token becomes its columns."""
    n_segments = len(inputs["audio_out_ids_start"]) if "audio_out_ids_start" in inputs else 0
    columns = inputs["audio_out_ids"].shape[1] if "audio_out_ids" in inputs else 0
    return int(inputs["input_ids"].shape[1]) - n_segments + int(columns)


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
        cache_lengths: Sequence[int] = DEFAULT_CACHE_LENGTHS,
        cuda_graphs: bool | None = None,
    ):
        self.model = model.eval()  # a HiggsAudioModel, or a PeftModel around one (adapter unmerged)
        # PEFT injects its LoRA layers into the base model's modules, so the base model's own
        # generate() (and its CUDA graphs) runs base + adapter.
        self.net = model.get_base_model() if hasattr(model, "get_base_model") else model
        self.tokenizer = tokenizer
        self.codec = codec
        self.config = self.net.config
        self.device = next(model.parameters()).device
        self.net.set_audio_special_tokens(tokenizer)
        self.prepare_inputs = InferenceInputs(tokenizer, codec, self.config)
        if cache not in ("auto", "static", "dynamic"):
            raise ValueError(f"cache must be auto, static or dynamic, not {cache!r}")
        on_cuda = self.device.type == "cuda"
        self.cache_mode = ("static" if on_cuda else "dynamic") if cache == "auto" else cache
        self.kv_caches: OrderedDict | None = None
        self.cuda_graphs = False
        if self.cache_mode == "static":
            self.kv_caches = self._build_caches(cache_lengths)
            if on_cuda if cuda_graphs is None else cuda_graphs:
                self._capture_graphs()
                self.cuda_graphs = True

    def _capture_graphs(self) -> None:
        """Once per loaded model: one graph per bucket for audio and for text decode steps.

        `capture_model` builds its dummy hidden states in `config.torch_dtype`, which is the dtype the
        weights are stored in, not the one they were loaded in (an fp32 merge or the fp32 tiny model
        loaded as bf16 on CUDA): capture would fail with a dtype mismatch. The config says the loaded
        dtype for the capture only.
        """
        stored = self.config.torch_dtype
        self.config.torch_dtype = self.net.embed_tokens.weight.dtype
        try:
            self.net.capture_model(self.kv_caches.values())
        finally:
            self.config.torch_dtype = stored

    def _build_caches(self, lengths: Sequence[int]) -> OrderedDict:
        from transformers.cache_utils import StaticCache

        cache_config = deepcopy(self.config.text_config)
        # DualFFN layers keep their own key/value entries after the text layers' (as the serve engine sizes it).
        cache_config.num_hidden_layers += len(self.config.audio_dual_ffn_layers or [])
        return OrderedDict(
            (
                length,
                StaticCache(
                    config=cache_config, batch_size=1, max_cache_len=length, device=self.device, dtype=self.net.dtype
                ),
            )
            for length in sorted(lengths)
        )

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

    def _caches_for(self, inputs: dict, budget: int) -> OrderedDict | None:
        if self.kv_caches is None:
            return None
        needed = merged_length(inputs) + budget
        largest = next(reversed(self.kv_caches))
        if needed > largest:
            log.warning(
                "prompt + %d new tokens need %d cache positions, more than the largest static cache (%d): "
                "this call uses the dynamic cache",
                budget,
                needed,
                largest,
            )
            return None
        for cache in self.kv_caches.values():
            cache.reset()
        return self.kv_caches

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
        caches = self._caches_for(inputs, budget)
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
            **({"past_key_values_buckets": caches} if caches is not None else {}),
        )
        prompt_ids = inputs["input_ids"][0].tolist()
        text = self.tokenizer.decode(sequences[0, len(prompt_ids) :].tolist())
        n_audio = 1 + len(context)
        if not audio:
            empty = np.zeros((self.config.audio_num_codebooks, 0), dtype=np.int64)
            return Generation(empty, empty, text, False, prompt_ids, n_audio, budget)
        raw = audio[0]  # the segment the prompt's <|audio_out_bos|> opened
        # generate() closes a stream by forcing EOS into codebooks 0..C-2 and ends the segment one
        # column before the last codebook's own EOS would come: that last column marks a stop.
        stopped = bool((raw[:-1, -1] == self.config.audio_stream_eos_id).all())
        codes_out = self.strip_stream_tokens(raw)
        return Generation(codes_out.cpu().numpy(), raw.cpu().numpy(), text, stopped, prompt_ids, n_audio, budget)

    def strip_stream_tokens(self, raw: torch.Tensor) -> torch.Tensor:
        """Delay-patterned stream (with BOS and EOS columns) -> plain (C, T) codes."""
        delay = self.config.audio_num_codebooks - 1 if self.config.use_delay_pattern else 0
        if raw.shape[1] - delay <= 2:
            # Cut before a whole frame cleared the delay: nothing but BOS/EOS (and revert would fail).
            return raw.new_zeros((raw.shape[0], 0))
        if self.config.use_delay_pattern:
            raw = revert_delay_pattern(raw)
        return raw.clip(0, self.config.audio_codebook_size - 1)[:, 1:-1]

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


def load_adapter(model, lora_path: str):
    """Base model + LoRA adapter, unmerged: PEFT's forward adds the adapter's update at run time
    (adapter weights kept in fp32 by PEFT), so nothing of it is rounded into bf16 base weights."""
    from pathlib import Path

    from peft import PeftModel

    if not (Path(lora_path) / "adapter_config.json").is_file():
        raise FileNotFoundError(
            f"{lora_path}: no adapter_config.json (pass a training --output_dir, or a "
            f"merged model as --model_path without --lora_path)"
        )
    return PeftModel.from_pretrained(model, str(lora_path)).eval()


def check_text(text: str) -> None:
    """The API and the CLI refuse what validation refuses, with its reason code."""
    if not isinstance(text, str) or not text.strip():
        raise SampleError("empty_text", "empty_text: the target text is empty or whitespace only; nothing to say")


# --- Python API ----------------------------------------------------------------------------------

MODEL_ENV, LORA_ENV, CODEC_ENV = "HIGGS_LORA_MODEL", "HIGGS_LORA_LORA_PATH", "HIGGS_LORA_AUDIO_TOKENIZER"
_CLONERS: dict = {}


def get_cloner(model_path: str, lora_path: str | None, audio_tokenizer: str, device: str | None = None) -> VoiceCloner:
    """One VoiceCloner per (model, adapter, codec, device), loaded (and CUDA graphs captured) once."""
    key = (model_path, lora_path, audio_tokenizer, device)
    if key not in _CLONERS:
        if len(_CLONERS) >= 2:
            _CLONERS.pop(next(iter(_CLONERS)))
        _CLONERS[key] = VoiceCloner.load(model_path, lora_path, audio_tokenizer, device=device)
    return _CLONERS[key]


def generate_arabic_speech(
    ref_text: str,
    ref_audio_path: str,
    target_text: str,
    temperature: float = 0.3,
    top_k: int = 50,
    top_p: float = 0.95,
    seed: int | None = None,
    *,
    model_path: str | None = None,
    lora_path: str | None = None,
    audio_tokenizer: str | None = None,
    system_prompt: str | None = None,
    max_new_tokens: int = 2048,
    chunking: ChunkSettings | None = None,
    device: str | None = None,
    log_settings: bool = True,
) -> tuple[np.ndarray, int]:
    """The design's entry point: clone the voice of `ref_audio_path` saying `target_text`.

    The model, adapter and codec come from the keyword arguments, else the environment
    (HIGGS_LORA_MODEL, HIGGS_LORA_LORA_PATH, HIGGS_LORA_AUDIO_TOKENIZER), else the training run's
    settings next to the adapter / in the merged folder, else `higgs_lora.defaults`. Returns
    (float32 mono waveform, sample rate).
    """
    from .run_settings import resolve_inference

    check_text(target_text)
    settings = resolve_inference(
        model_path or os.environ.get(MODEL_ENV) or None,
        lora_path or os.environ.get(LORA_ENV) or None,
        audio_tokenizer or os.environ.get(CODEC_ENV) or None,
        system_prompt,
    )
    if log_settings:
        settings.report()
    cloner = get_cloner(settings["model_path"], settings["lora_path"], settings["audio_tokenizer"], device)
    # The same text front-end as training and `infer` (the run's settings, else the default).
    sample = normalize_sample(
        CloneSample(
            ref_text=ref_text,
            ref_audio=str(ref_audio_path),
            target_text=target_text,
            system_prompt=settings["system_prompt"],
        ),
        settings["text_normalization"],
    )
    wav, sr, _ = cloner.clone(
        sample,
        GenerationSettings(max_new_tokens=max_new_tokens, temperature=temperature, top_k=top_k, top_p=top_p, seed=seed),
        chunking,
    )
    return wav, sr
