"""The real Higgs Audio v2 tokenizer (boson_multimodal) behind the project's codec interface.

See ``codes.py`` for the interface. Differences from calling boson's tokenizer directly:

- files are read with soundfile + soxr (``load_audio``) and waveforms resampled with soxr, so
  boson's librosa path is never taken and training and inference decode audio the same way;
- waveforms reach boson as float32 (it turns the array into a tensor as is, and float64 does not
  match the float32 weights);
- codes come back as CPU int64, whatever device the tokenizer runs on.

Note: a codebook whose ``inited`` flag is false is filled by k-means on the first ``encode`` (the
released checkpoint has them initialised; a random tokenizer does not), which is slow on CPU.
"""

from __future__ import annotations

import contextlib
import os
from typing import Iterator

import numpy as np
import torch

from ..defaults import AUDIO_TOKENIZER
from ..model.compat import ensure_audio_tokenizer_importable
from .audio import mono_wave

# Mirrors config.json of the released bosonai/higgs-audio-v2-tokenizer; used to build a tokenizer
# of the real architecture offline (tests), never to load the released one (that reads its own).
RELEASED_TOKENIZER_CONFIG = {
    "n_filters": 32,
    "D": 256,
    "codebook_dim": 64,
    "target_bandwidths": [0.5, 1, 1.5, 2, 4],
    "ratios": [8, 5, 4, 2, 3],
    "sample_rate": 24000,
    "bins": 1024,
    "n_q": 8,
    "semantic_techer": "hubert_base_general",
}


def boson_tokenizer_module():
    ensure_audio_tokenizer_importable()
    from boson_multimodal.audio_processing import higgs_audio_tokenizer

    return higgs_audio_tokenizer


@contextlib.contextmanager
def semantic_teacher_made_by(make) -> Iterator[None]:
    """While active, boson's tokenizer constructor gets ``make()`` instead of loading HuBERT by name.

    Only the ``AutoModel`` name inside boson's tokenizer module is replaced, and it is restored on exit,
    so nothing else in the process (the LLM loading included) is affected.
    """
    module = boson_tokenizer_module()
    real_auto_model = module.AutoModel

    class _AutoModel:
        @staticmethod
        def from_pretrained(*_args, **_kwargs):
            return make()

    module.AutoModel = _AutoModel
    try:
        yield
    finally:
        module.AutoModel = real_auto_model


def semantic_teacher_from(folder) -> contextlib.AbstractContextManager:
    """Boson's tokenizer gets the HuBERT in `folder` (a pinned snapshot or a staged copy), without remote code.

    boson asks to trust remote code here; the checkpoint is a plain HubertModel, so no code from the
    hub is executed here.
    """
    from transformers import AutoModel

    return semantic_teacher_made_by(lambda: AutoModel.from_pretrained(str(folder), trust_remote_code=False))


class HiggsAudioCodec:
    """Adapter over boson_multimodal's ``HiggsAudioTokenizer`` (see ``codes.AudioCodec``)."""

    def __init__(self, tokenizer: torch.nn.Module, name: str = AUDIO_TOKENIZER):
        self.tokenizer = tokenizer
        self.name = name
        self.sampling_rate = int(tokenizer.sampling_rate)
        self.tps = int(tokenizer.tps)
        self.num_codebooks = int(tokenizer.num_codebooks)
        # boson's own `codebook_size` property is the quantizer width (256 + 768), not the code range.
        self.codebook_size = int(tokenizer.quantizer.bins)
        self.hop = int(tokenizer.hop_length)

    @classmethod
    def load(cls, name_or_path: str | os.PathLike = AUDIO_TOKENIZER, device: str | torch.device | None = None):
        """Load a hub id (`repo@revision`, see model/refs.py) or a local folder holding ``config.json`` and ``model.pth``.

        boson's loader takes no revision, so a hub id is fetched here at its revision and boson gets the
        folder; the HuBERT its constructor loads by name comes from `model.resolve.semantic_teacher_folder`.
        """
        from ..model.resolve import codec_folder, semantic_teacher_folder

        if device is None:
            device = "cuda" if torch.cuda.is_available() else "cpu"
        folder = codec_folder(str(name_or_path))
        module = boson_tokenizer_module()
        with semantic_teacher_from(semantic_teacher_folder(folder)):
            tokenizer = module.load_higgs_audio_tokenizer(str(folder), device=str(device))
        return cls(tokenizer, name=str(name_or_path))

    def encode(self, audio_path_or_wv, sr: int | None = None) -> torch.LongTensor:
        wav = mono_wave(audio_path_or_wv, sr, self.sampling_rate)
        # Already at the tokenizer's rate, so boson skips its librosa resampling.
        codes = self.tokenizer.encode(np.ascontiguousarray(wav, dtype=np.float32), sr=self.sampling_rate)
        return codes.to("cpu", torch.long)

    def decode(self, vq_code: torch.Tensor) -> np.ndarray:
        codes = torch.as_tensor(vq_code).long()
        if codes.ndim == 2:
            codes = codes[None]
        if codes.ndim != 3:
            raise ValueError(f"decode() expects codes of shape (B, C, T), got {tuple(codes.shape)}")
        # An out-of-range code would otherwise surface as an opaque embedding/CUDA assert.
        if codes.numel() and (int(codes.min()) < 0 or int(codes.max()) >= self.codebook_size):
            raise ValueError(f"decode(): codes must lie in [0, {self.codebook_size})")
        with torch.no_grad():
            wav = self.tokenizer.decode(codes)
        return np.asarray(wav, dtype=np.float32)
