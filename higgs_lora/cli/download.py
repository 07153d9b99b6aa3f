"""`higgs-lora download`: stage the pinned model and codec as local folders (for machines without network)."""

from __future__ import annotations

from ..defaults import AUDIO_TOKENIZER, BASE_MODEL

NAME = "download"
SUMMARY = "fetch the pinned model and audio tokenizer into local folders (stage weights for offline clusters)"
DESCRIPTION = (
    SUMMARY
    + """

Downloads weights, configs and tokenizer files only (no demo media), with a progress bar, at the
revisions boson_multimodal 0.1.1 can read (Boson rewrote both hub repositories in place on 2026-04-04),
plus the HuBERT the audio tokenizer loads by name (into the codec folder's semantic_teacher/). Then
verifies them (model type, safetensors headers, model.pth) and prints the two folders: pass them as
--base_model/--model_path and --audio_tokenizer on any machine, network or not. Copy OUTPUT_DIR to an
offline cluster as it is. Hub access follows the usual huggingface_hub settings (HF_TOKEN, HF_ENDPOINT).

    higgs-lora download --output_dir weights
    higgs-lora train --base_model weights/higgs-audio-v2-generation-3B-base \\
        --audio_tokenizer weights/higgs-audio-v2-tokenizer --train_data data.json
"""
)


def add_arguments(p) -> None:
    p.add_argument("--output_dir", default="weights", help="folder to stage the model and codec folders in")
    p.add_argument("--base_model", default=BASE_MODEL, help="model to fetch, owner/repo@revision (default: the pin)")
    p.add_argument(
        "--audio_tokenizer", default=AUDIO_TOKENIZER, help="codec to fetch, owner/repo@revision (default: the pin)"
    )


def run(args) -> int:
    from ..model.staging import download

    model_dir, codec_dir = download(args.output_dir, args.base_model, args.audio_tokenizer)
    print(f"verified {args.base_model}\n      -> {model_dir}   (pass as --base_model / --model_path)")
    print(f"verified {args.audio_tokenizer}\n      -> {codec_dir}   (pass as --audio_tokenizer)")
    return 0
