"""`higgs-lora export`: a boson-format model (base, merged, or base + adapter) as transformers-native folders.

    OUT/                  HiggsAudioV2ForConditionalGeneration + HiggsAudioV2Processor (tokenizer, template)
    OUT/audio_tokenizer/  HiggsAudioV2TokenizerModel (when a real codec is named)
    OUT/higgs_lora_run.json     the training run's settings (system prompt, codec, text front-end)
    OUT/higgs_lora_export.json  provenance: source model and adapter, dtype, and boson's own config

An adapter is merged first, in fp32 (infer/merge.py), and the export is then written in fp32 unless a
dtype is asked for: the adapter's update is not rounded twice.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ..train.config import RUN_CONFIG
from . import config as native_config
from . import weights
from .template import write_processor

log = logging.getLogger(__name__)

EXPORT_RECORD = "higgs_lora_export.json"
CODEC_SUBFOLDER = "audio_tokenizer"
DTYPES = {"bf16": "bfloat16", "fp16": "float16", "fp32": "float32", "auto": None}


@dataclass
class ExportReport:
    output_dir: Path
    dtype: str
    weights: int
    codec_dir: Path | None


def _token_ids(tokenizer) -> dict[str, int]:
    names = ["<|begin_of_text|>", "<|eot_id|>", "<|AUDIO|>", "<|audio_eos|>", native_config.DELAY_TOKEN]
    ids = {}
    for name in names:
        token_id = tokenizer.convert_tokens_to_ids(name)
        if token_id is None or token_id == tokenizer.unk_token_id:
            raise ValueError(f"the tokenizer has no {name} token, which the native format needs")
        ids[name] = int(token_id)
    return ids


def export(
    model_path: str,
    output_dir: str | Path,
    lora_path: str | None = None,
    audio_tokenizer: str | None = None,
    dtype: str = "auto",
    overwrite: bool = False,
) -> ExportReport:
    import torch

    from ..model.load import load_tokenizer
    from ..model.provenance import provenance
    from ..model.resolve import model_folder

    out = Path(output_dir)
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise FileExistsError(f"{out} exists and is not empty; pass --overwrite to replace its files")
    if dtype not in DTYPES:
        raise ValueError(f"unknown dtype {dtype!r}; use auto, bf16, fp16 or fp32")
    with tempfile.TemporaryDirectory(prefix="higgs-lora-export-") as tmp:
        merged = None
        if lora_path:
            from ..infer.merge import merge_adapter

            # fp32 merge, saved in fp32: the only rounding is the export's own cast below.
            merged = merge_adapter(model_path, lora_path, Path(tmp) / "merged", dtype="fp32")
            source = merged.output_path
        else:
            source = model_folder(model_path)
        boson = json.loads((source / "config.json").read_text(encoding="utf-8"))
        native_config.check_exportable(boson)
        stored = boson.get("torch_dtype") or boson.get("text_config", {}).get("torch_dtype") or "float32"
        dtype_name = DTYPES[dtype] or ("float32" if merged else stored)
        tokenizer = load_tokenizer(str(source))
        from .tensors import read_folder, write_folder

        state = weights.rename(read_folder(source), "native")
        target = getattr(torch, dtype_name)
        state = {k: v.to(target) if v.is_floating_point() else v for k, v in state.items()}
        out.mkdir(parents=True, exist_ok=True)
        for stale in [*out.glob("*.safetensors"), out / "model.safetensors.index.json"]:
            stale.unlink(missing_ok=True)  # --overwrite: shards of an earlier export must not mix with these
        config = native_config.to_native(boson, _token_ids(tokenizer), dtype=dtype_name)
        (out / "config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")
        (out / "generation_config.json").write_text(
            json.dumps(
                {
                    "bos_token_id": config["bos_token_id"],
                    "eos_token_id": config["eos_token_id"],
                    "pad_token_id": config["pad_token_id"],
                    # boson's serve engine's repetition-aware sampling window, which the native sampler also has
                    "ras_win_len": 7,
                    "ras_win_max_num_repeat": 2,
                },
                indent=2,
            ),
            encoding="utf-8",
        )
        write_folder(out, state)
        codec_dir = None
        if audio_tokenizer and audio_tokenizer != "tiny":
            from .codec import export_codec

            codec_dir = export_codec(audio_tokenizer, out / CODEC_SUBFOLDER)
        elif audio_tokenizer == "tiny":
            log.warning(
                "the `tiny` codec is this project's stand-in and has no native equivalent: the export's "
                "processor has no audio tokenizer (pass audio_tokenizer= when loading it)"
            )
        write_processor(out, tokenizer, codec_dir, boson["audio_stream_bos_id"], boson["audio_stream_eos_id"])
        run_file = next(
            (Path(p) / RUN_CONFIG for p in (lora_path, source) if p and (Path(p) / RUN_CONFIG).is_file()), None
        )
        if run_file is not None:
            shutil.copy(run_file, out / RUN_CONFIG)
        record = {
            "format": "transformers higgs_audio_v2 (>= 5.3)",
            "model_path": model_path,
            "lora_path": lora_path,
            "audio_tokenizer": audio_tokenizer,
            "dtype": dtype_name,
            "merged_in": "float32" if merged else None,
            "adapter_update_relative_error": merged.update_error if merged else None,
            "source": provenance(model_path),  # the base weights (the adapter is named by lora_path)
            # exactly what boson_multimodal reads, for a lossless import back (native/imports.py)
            "boson_config": boson,
        }
        (out / EXPORT_RECORD).write_text(json.dumps(record, indent=2, default=str), encoding="utf-8")
    return ExportReport(out, dtype_name, len(state), codec_dir)
