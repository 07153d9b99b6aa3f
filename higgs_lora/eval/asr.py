"""Pluggable speech recognition and the WER/CER it feeds.

A backend is anything with `name`, `languages` (None = any) and `transcribe(wav, sr, language) -> str`.
`load_asr(spec)` builds one from a short spec:

    auto                    by language: English -> pocketsphinx (offline); Arabic and every other language ->
                            Whisper large-v3 through transformers, downloaded on first use. Where Whisper cannot
                            be had (offline and not cached), one line says so and those samples get no WER.
    pocketsphinx            offline, English only: the wheel ships its acoustic model, LM and dictionary
    whisper[:MODEL]         Whisper through transformers (installed with this package). MODEL: a size name
                            (large-v3, the default, pinned to a hub commit; small, medium, ... at `main`),
                            a hub id `owner/repo[@revision]`, or a local folder holding a transformers Whisper
    faster-whisper[:MODEL]  Whisper through CTranslate2 (`pip install 'higgs-lora[whisper]'`), MODEL a size name,
                            hub id or local CTranslate2 folder
    none                    no ASR: WER/CER are left empty

Scores use the per-language normalisation of `text_norm` on both sides, then jiwer: WER over words,
CER over characters (spaces included, single-spaced).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .text_norm import normalize

log = logging.getLogger(__name__)

DEFAULT_WHISPER_MODEL = "large-v3"
# openai/whisper-large-v3 at this commit: the hash is the one many public projects pin for this
# repository (it names the snapshot folder of the hub cache); it was not checked against the hub from
# this project's offline machines. `--asr whisper:openai/whisper-large-v3@REVISION` overrides it.
WHISPER_REPO = "openai/whisper-large-v3"
WHISPER_REVISION = "06f233fe06e710322aca913c1bc4249a0d71fce1"
# Config, tokenizer, feature extractor and the default-precision weights; not the repo's other formats.
WHISPER_FILES = ("*.json", "*.txt", "model.safetensors", "model-*-of-*.safetensors")
WHISPER_WINDOW_S = 30  # Whisper's encoder sees 30 s at a time


class MissingScorerError(ValueError):
    """An optional scorer package or model is not available; the message says how to get it.

    A ValueError so the CLI reports it as a one-line `error:` (exit 2): the user fixes it with pip."""


def missing(package: str, what: str, pip_line: str, extra: str = "eval") -> MissingScorerError:
    return MissingScorerError(
        f"{what} needs the optional package {package!r}: {pip_line} "
        f"(or `pip install 'higgs-lora[{extra}]'`, see docs/evaluation.md)"
    )


@dataclass
class ErrorRates:
    wer: float
    cer: float
    ref_words: int
    ref_chars: int
    word_errors: int
    char_errors: int


def error_rates(reference: str, hypothesis: str, language: str) -> ErrorRates:
    """WER/CER of `hypothesis` against `reference` after normalisation. Rates may exceed 1 (insertions)."""
    import jiwer

    ref, hyp = normalize(reference, language), normalize(hypothesis, language)
    if not ref:
        raise ValueError(f"reference text {reference!r} is empty after normalisation: WER is undefined")
    words = jiwer.process_words(ref, hyp)
    chars = jiwer.process_characters(ref, hyp)
    word_errors = words.substitutions + words.deletions + words.insertions
    char_errors = chars.substitutions + chars.deletions + chars.insertions
    return ErrorRates(words.wer, chars.cer, len(ref.split()), len(ref), word_errors, char_errors)


def _pcm16(wav: np.ndarray, sr: int, target_sr: int) -> bytes:
    from ..data.audio import resample

    wav = resample(np.asarray(wav, dtype=np.float32), sr, target_sr)
    return (np.clip(wav, -1.0, 1.0) * 32767).astype("<i2").tobytes()


class PocketSphinxASR:
    """CMU PocketSphinx with the US-English model bundled in its wheel: no download, no GPU.

    A weak recogniser (a 2010s HMM with a general trigram LM): good enough to tell speech from babble
    and to rank systems on English, not to compare with published WER figures.
    """

    name = "pocketsphinx"
    languages = {"en"}
    sampling_rate = 16000

    def __init__(self):
        try:
            from pocketsphinx import Decoder
        except ImportError:
            raise missing("pocketsphinx", "the offline English ASR", "pip install pocketsphinx==5.1.1") from None
        self._decoder = Decoder(samprate=self.sampling_rate, logfn=os.devnull)

    def transcribe(self, wav: np.ndarray, sr: int, language: str = "en") -> str:
        d = self._decoder
        d.start_utt()
        d.process_raw(_pcm16(wav, sr, self.sampling_rate), full_utt=True)
        d.end_utt()
        hyp = d.hyp()
        return hyp.hypstr if hyp is not None else ""


def whisper_source(model: str) -> tuple[str, Path]:
    """(display name, local folder) of a transformers Whisper: a folder as is, a hub model fetched once.

    Raises MissingScorerError, one line with the ways out, when the files cannot be had (offline, not cached)."""
    from huggingface_hub import snapshot_download

    from ..model.refs import parse_ref

    if Path(model).expanduser().is_dir():
        return model, Path(model).expanduser()
    if "/" not in model:  # a size name: large-v3, small, ...
        repo = f"openai/whisper-{model}"
        model = f"{repo}@{WHISPER_REVISION}" if repo == WHISPER_REPO else repo
    ref = parse_ref(model)  # a malformed name is a one-line WeightsError (a ValueError) already
    try:
        return str(ref), Path(snapshot_download(ref.repo, revision=ref.revision, allow_patterns=list(WHISPER_FILES)))
    except Exception as err:  # offline and not cached, unknown repo or revision, network error
        raise MissingScorerError(
            f"the Whisper ASR cannot load {ref} ({type(err).__name__}: not in the local hub cache and the hub "
            "did not serve it): run once where the hub is reachable (the files stay cached), or pass "
            "--asr whisper:FOLDER with a saved transformers Whisper, or --asr none"
        ) from None


def whisper_dtype(device: str):
    """fp16 on a GPU (Whisper's released precision, half the memory), fp32 on CPU."""
    import torch

    return torch.float16 if device.startswith("cuda") else torch.float32


class WhisperASR:
    """Whisper through transformers (already a dependency); large-v3 is the usual choice for Arabic.

    The files are resolved when the backend is built, so a missing model fails before any generation;
    the weights load on the first transcription, so they do not sit in memory while the voices are cloned.
    Greedy decoding with the language forced (Whisper's own detection when it does not know the language);
    audio over 30 s is cut into 30 s windows, which may split a word at each cut.
    """

    languages = None
    sampling_rate = 16000

    def __init__(self, model: str = DEFAULT_WHISPER_MODEL, device: str = "auto"):
        display, self.folder = whisper_source(model)
        self.name = f"whisper:{display}"
        self.device = device
        self._model = self._processor = None

    def _load(self):
        import torch
        from transformers import WhisperForConditionalGeneration, WhisperProcessor

        device = ("cuda" if torch.cuda.is_available() else "cpu") if self.device in (None, "auto") else self.device
        self._processor = WhisperProcessor.from_pretrained(self.folder)
        self._model = (
            WhisperForConditionalGeneration.from_pretrained(self.folder, torch_dtype=whisper_dtype(str(device)))
            .to(device)
            .eval()
        )

    def knows(self, language: str | None) -> bool:
        if self._model is None:
            self._load()
        lang_to_id = getattr(self._model.generation_config, "lang_to_id", None) or {}
        return bool(language) and f"<|{language}|>" in lang_to_id

    def transcribe(self, wav: np.ndarray, sr: int, language: str | None = None) -> str:
        import torch

        from ..data.audio import resample

        lang = language if self.knows(language) else None
        audio = resample(np.asarray(wav, dtype=np.float32), sr, self.sampling_rate)
        step = WHISPER_WINDOW_S * self.sampling_rate
        model = self._model
        # The decoder's positions bound the output; the forced prefix (start, language, task, no timestamps) uses 4.
        max_new = model.config.max_target_positions - 4
        texts = []
        for start in range(0, max(len(audio), 1), step):
            chunk = audio[start : start + step]
            inputs = self._processor.feature_extractor(
                chunk, sampling_rate=self.sampling_rate, return_tensors="pt", return_attention_mask=True
            )
            with torch.inference_mode():
                # Whisper's encoder ignores the mask (it always sees 30 s); passing it silences generate's notice
                # that pad and end of text share an id.
                ids = model.generate(
                    inputs.input_features.to(model.device, model.dtype),
                    attention_mask=inputs.attention_mask.to(model.device),
                    language=lang,
                    task="transcribe",
                    max_new_tokens=max_new,
                    do_sample=False,
                    num_beams=1,
                )
            texts.append(self._processor.tokenizer.decode(ids[0], skip_special_tokens=True).strip())
        return " ".join(t for t in texts if t).strip()


class FasterWhisperASR:
    """Whisper through CTranslate2 (faster-whisper): faster on GPU, an optional package."""

    languages = None
    sampling_rate = 16000

    def __init__(self, model: str = DEFAULT_WHISPER_MODEL, device: str = "auto", compute_type: str = "default"):
        try:
            from faster_whisper import WhisperModel
        except ImportError:
            raise missing(
                "faster-whisper", "the faster-whisper ASR backend", "pip install faster-whisper", extra="whisper"
            ) from None
        self.name = f"faster-whisper:{model}"
        self._model = WhisperModel(model, device=device, compute_type=compute_type)

    def transcribe(self, wav: np.ndarray, sr: int, language: str | None = None) -> str:
        from ..data.audio import resample

        audio = resample(np.asarray(wav, dtype=np.float32), sr, self.sampling_rate)
        lang = language if language and language != "other" else None
        segments, _ = self._model.transcribe(audio, language=lang, beam_size=5, condition_on_previous_text=False)
        return " ".join(s.text.strip() for s in segments).strip()


class AutoASR:
    """One backend per language: the offline English recogniser for English, Whisper for everything else.

    Whisper's files are resolved at construction (a few small requests, or none when cached); where that
    fails, one warning says so and non-English samples get no WER instead of the run stopping.
    """

    name = "auto"

    def __init__(self, device: str = "auto", whisper: str = DEFAULT_WHISPER_MODEL):
        self.english = None
        try:
            self.english = PocketSphinxASR()
        except MissingScorerError as err:
            log.warning("English WER goes through Whisper: %s", err)
        self.whisper = None
        try:
            self.whisper = WhisperASR(whisper, device)
        except MissingScorerError as err:
            log.warning("no WER/CER for Arabic and other non-English samples: %s", err)
        names = [b.name for b in (self.english, self.whisper) if b is not None]
        self.name = "auto (" + ", ".join(names) + ")" if names else "auto (none available)"
        self.languages = None if self.whisper is not None else ({"en"} if self.english else set())

    def backend(self, language: str):
        if language == "en" and self.english is not None:
            return self.english
        return self.whisper

    def transcribe(self, wav: np.ndarray, sr: int, language: str | None = None) -> str:
        return self.backend(language).transcribe(wav, sr, language)


def load_asr(spec: str | None, device: str = "auto"):
    """`auto`, `pocketsphinx`, `whisper[:MODEL]`, `faster-whisper[:MODEL]`, or `none`/None (returns None)."""
    if spec is None or spec == "none":
        return None
    name, _, arg = spec.partition(":")
    if name == "auto" and not arg:
        return AutoASR(device)
    if name == "pocketsphinx" and not arg:
        return PocketSphinxASR()
    if name == "whisper":
        return WhisperASR(arg or DEFAULT_WHISPER_MODEL, device=device)
    if name == "faster-whisper":
        return FasterWhisperASR(arg or DEFAULT_WHISPER_MODEL, device=device)
    raise ValueError(
        f"unknown ASR backend {spec!r}: use auto, pocketsphinx, whisper[:MODEL], faster-whisper[:MODEL] or none"
    )


def supports(asr, language: str) -> bool:
    return asr is not None and (asr.languages is None or language in asr.languages)
