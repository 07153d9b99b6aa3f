"""`higgs-lora export`: the model (base, merged, or base + adapter) as transformers-native Higgs Audio v2 folders."""

from __future__ import annotations

NAME = "export"
SUMMARY = "write a model (+ adapter) in transformers' native Higgs Audio v2 format (transformers >= 5.3, vllm-omni)"
DESCRIPTION = """Write folders that transformers >= 5.3 loads with from_pretrained and nothing else:

    OUT/                  HiggsAudioV2ForConditionalGeneration (text head kept) + HiggsAudioV2Processor
    OUT/audio_tokenizer/  HiggsAudioV2TokenizerModel (when --audio_tokenizer names the real codec)

An adapter (--lora_path) is merged in fp32 first. Load with
HiggsAudioV2ForConditionalGeneration.from_pretrained(OUT, use_text_head=True) and
AutoProcessor.from_pretrained(OUT); docs/native.md has the commands and vllm-omni serving."""


def add_arguments(p) -> None:
    p.add_argument("--model_path", required=True, help="base or merged model: hub id, folder or tiny")
    p.add_argument("--lora_path", default=None, help="training --output_dir: merged (in fp32) before the export")
    p.add_argument("--output_dir", required=True, help="folder for the native model, processor and codec")
    p.add_argument(
        "--audio_tokenizer",
        default=None,
        help="codec to export into OUT/audio_tokenizer (hub id or folder; default: the run's codec, else none)",
    )
    p.add_argument(
        "--dtype",
        default="auto",
        choices=["auto", "bf16", "fp16", "fp32"],
        help="dtype of the written weights (default auto: fp32 after an adapter merge, else as stored)",
    )
    p.add_argument("--overwrite", action="store_true", help="replace existing output")


def run(args) -> int:
    import sys

    from ..infer.run_settings import find_run_config
    from ..native.export import export

    codec = args.audio_tokenizer
    if codec is None:
        path, run = find_run_config(args.lora_path, args.model_path)
        codec = run.get("audio_tokenizer")
        if codec:
            print(f"--audio_tokenizer {codec} (from {path})", file=sys.stderr)
    report = export(
        args.model_path,
        args.output_dir,
        lora_path=args.lora_path,
        audio_tokenizer=codec,
        dtype=args.dtype,
        overwrite=args.overwrite,
    )
    print(
        f"exported {report.weights} tensors ({report.dtype}) to {report.output_dir}"
        + (f"; codec in {report.codec_dir}" if report.codec_dir else "; no codec exported")
    )
    return 0
