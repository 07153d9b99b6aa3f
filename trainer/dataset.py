"""`VoiceCloningDataset` at the design's path: a thin layer over `higgs_lora.data.dataset`.

    dataset = VoiceCloningDataset(data_path, tokenizer, audio_tokenizer)
    sample = dataset[0]      # ChatMLDatasetSample: input_ids, label_ids, audio_ids_concat, audio_waveforms_concat, ...

`data_path` is a data file (any layout `higgs-lora validate` accepts) or a list of samples
(`CloneSample`s or records); `audio_tokenizer` is a loaded codec or its name (`tiny`, a hub id, a
folder), `tokenizer` a loaded tokenizer or its name. A data file goes through the same validation
(audio decoded and checked) and text normaliser as `higgs-lora train`; a list is checked for its
components and normalised, its audio only when it is encoded.
"""

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # works from any folder, installed or not

from higgs_lora.data.dataset import VoiceCloningDataset as _PackageDataset  # noqa: E402
from higgs_lora.defaults import DEFAULT_SYSTEM_PROMPT  # noqa: E402


def _samples(data, system_prompt, text_normalization):
    from higgs_lora.data.formats import SampleError, sample_from_record
    from higgs_lora.data.sample import CloneSample
    from higgs_lora.data.text import normalize_sample
    from higgs_lora.data.validate import load_samples

    if isinstance(data, (str, os.PathLike)):
        return load_samples(data, system_prompt, text_normalization=text_normalization)
    samples = []
    for index, item in enumerate(data):
        if not isinstance(item, CloneSample):
            try:
                item = sample_from_record(item, Path.cwd(), system_prompt)
            except SampleError as err:
                raise ValueError(f"sample {index}: {err}") from None
        samples.append(normalize_sample(item, text_normalization))
    return samples


class VoiceCloningDataset(_PackageDataset):
    def __init__(
        self,
        data_path,
        tokenizer,
        audio_tokenizer,
        system_prompt: str = DEFAULT_SYSTEM_PROMPT,
        text_normalization=None,
        num_codebooks: int | None = None,
    ):
        if isinstance(tokenizer, str):
            from higgs_lora.model.load import load_tokenizer

            tokenizer = load_tokenizer(tokenizer)
        if isinstance(audio_tokenizer, str):
            from higgs_lora.data.codes import load_codec

            audio_tokenizer = load_codec(audio_tokenizer)
        super().__init__(
            _samples(data_path, system_prompt, text_normalization),
            tokenizer,
            audio_tokenizer,
            num_codebooks=num_codebooks,
        )
