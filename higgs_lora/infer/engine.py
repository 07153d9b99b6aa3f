"""Voice-cloning generation through the same prompt builder and collator as training.

The prompt is `data.sample.inference_prompt` (the training ChatML up to the target's
<|audio_out_bos|>), the reference audio is encoded by the same codec call as the training code
cache, and the batch comes from `data.dataset.build_collator`, as in boson's serve engine. The
model then runs `HiggsAudioModel.generate` with the serve engine's stop strings and RAS settings;
the delay pattern is reverted and the stream BOS/EOS columns stripped before decoding.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import torch
from boson_multimodal.model.higgs_audio.utils import revert_delay_pattern

from ..data.codes import AudioCodec, encode_file, load_codec
from ..data.dataset import batch_to_inputs, build_collator, make_chatml_sample
from ..data.sample import CloneSample, inference_prompt
from ..defaults import AUDIO_TOKENIZER, DEFAULT_SYSTEM_PROMPT
from ..model.hub import warn_if_other_base
from ..model.load import default_device, load_model, load_tokenizer
from ..train.config import read_run_config

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


@dataclass
class Generation:
    codes: np.ndarray  # (num_codebooks, T): delay reverted, stream BOS/EOS removed
    raw_codes: np.ndarray  # (num_codebooks, T + num_codebooks + 1): as generated, BOS column first
    text: str
    stopped: bool  # the model closed the stream with its EOS (not cut by max_new_tokens)
    prompt_ids: list[int]


class InferenceInputs:
    """Model-free half of inference: sample -> collated generate() inputs (prompt ids + reference codes)."""

    def __init__(self, tokenizer, codec: AudioCodec, config):
        self.tokenizer = tokenizer
        self.codec = codec
        self.collator = build_collator(config)

    def reference_codes(self, sample: CloneSample) -> list[np.ndarray]:
        _, paths = inference_prompt(sample, self.tokenizer)
        return [encode_file(self.codec, p) for p in paths]

    def __call__(self, sample: CloneSample, device: torch.device | str = "cpu",
                 codes: list[np.ndarray] | None = None) -> dict:
        """`codes`: the reference codes if already encoded (see `reference_codes`)."""
        prompt_ids, paths = inference_prompt(sample, self.tokenizer)
        if codes is None:
            codes = [encode_file(self.codec, p) for p in paths]
        chatml = make_chatml_sample(prompt_ids, None, codes)
        inputs = batch_to_inputs(self.collator([chatml]))
        return {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in inputs.items()}


class VoiceCloner:
    def __init__(self, model, tokenizer, codec: AudioCodec):
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.codec = codec
        self.config = model.config
        self.device = next(model.parameters()).device
        model.set_audio_special_tokens(tokenizer)
        self.prepare_inputs = InferenceInputs(tokenizer, codec, model.config)

    @classmethod
    def load(cls, model_path: str, lora_path: str | None = None, audio_tokenizer: str = AUDIO_TOKENIZER,
             device: str | None = None, dtype: str = "auto") -> "VoiceCloner":
        device = device or default_device()
        model = load_model(model_path, device=device, dtype=dtype)
        if lora_path:
            from peft import PeftModel

            warn_if_other_base(read_run_config(lora_path), model_path, f"adapter {lora_path}")
            model = PeftModel.from_pretrained(model, lora_path).merge_and_unload()
        return cls(model, load_tokenizer(model_path), load_codec(audio_tokenizer, device=device))

    @torch.inference_mode()
    def generate(self, sample: CloneSample, settings: GenerationSettings | None = None) -> Generation:
        settings = settings or GenerationSettings()
        inputs = self.prepare_inputs(sample, self.device)
        greedy = settings.temperature <= 0
        sequences, audio = self.model.generate(
            **inputs,
            max_new_tokens=settings.max_new_tokens,
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
        )
        prompt_len = inputs["input_ids"].shape[1]
        text = self.tokenizer.decode(sequences[0, prompt_len:].tolist())
        if not audio:
            empty = np.zeros((self.config.audio_num_codebooks, 0), dtype=np.int64)
            return Generation(empty, empty, text, False, inputs["input_ids"][0].tolist())
        raw = audio[0]  # the segment the prompt's <|audio_out_bos|> opened
        # generate() closes a stream by forcing EOS into codebooks 0..C-2 and ends the segment one
        # column before the last codebook's own EOS would come: that last column marks a stop.
        stopped = bool((raw[:-1, -1] == self.config.audio_stream_eos_id).all())
        codes = self.strip_stream_tokens(raw)
        return Generation(codes.cpu().numpy(), raw.cpu().numpy(), text, stopped, inputs["input_ids"][0].tolist())

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

    def clone(self, sample: CloneSample, settings: GenerationSettings | None = None) -> tuple[np.ndarray, int, Generation]:
        result = self.generate(sample, settings)
        return self.decode(result.codes), self.codec.sampling_rate, result


@functools.lru_cache(maxsize=2)
def _cached_cloner(model_path: str, lora_path: str | None, audio_tokenizer: str) -> VoiceCloner:
    return VoiceCloner.load(model_path, lora_path, audio_tokenizer)


def generate_arabic_speech(ref_text: str, ref_audio_path: str, target_text: str, model_path: str,
                           lora_path: str | None = None, audio_tokenizer: str = AUDIO_TOKENIZER,
                           system_prompt: str = DEFAULT_SYSTEM_PROMPT,
                           settings: GenerationSettings | None = None) -> tuple[np.ndarray, int]:
    """The design's entry point: clone the voice of `ref_audio_path` saying `target_text`."""
    cloner = _cached_cloner(model_path, lora_path, audio_tokenizer)
    sample = CloneSample(ref_text=ref_text, ref_audio=ref_audio_path, target_text=target_text, system_prompt=system_prompt)
    wav, sr, _ = cloner.clone(sample, settings)
    return wav, sr
