"""`higgs-lora eval`: fine-tuned vs baseline on held-out samples: SIM, WER/CER, duration, EOS, report + plots."""

from __future__ import annotations

from .generation_args import add_model_arguments

NAME = "eval"
SUMMARY = "score cloned voices (fine-tuned vs baseline): SIM, WER/CER, duration, EOS; report.md + plots"
INTERRUPTED_HINT = "the WAVs generated so far are under OUTPUT_DIR/audio"  # a second Ctrl-C, or one while scoring


def add_arguments(p) -> None:
    p.add_argument("--data", required=True, help="held-out samples with target audio (same formats as training)")
    p.add_argument("--output_dir", required=True, help="folder for report.md, results.csv, summary.json, plots, audio/")
    add_model_arguments(p)  # model, adapter, codec, system prompt, text front-end: as infer reads them
    p.add_argument(
        "--baseline_model",
        default=None,
        help="model to compare against, or none (default: --model_path when --lora_path is given, else "
        "the base model named in the merged model's run settings, else the released base model)",
    )
    p.add_argument(
        "--speaker_encoder",
        default="resemblyzer",
        help="resemblyzer (offline), wavlm[:MODEL] (a WavLMForXVector hub id or folder), or none",
    )
    p.add_argument(
        "--asr",
        default="auto",
        help="auto (by language: pocketsphinx for English, Whisper large-v3 through transformers for Arabic "
        "and the rest, downloaded on first use), pocketsphinx (offline, English only), whisper[:MODEL], "
        "faster-whisper[:MODEL] (pip install 'higgs-lora[whisper]'), or none",
    )
    p.add_argument(
        "--language",
        default="auto",
        help="language of the target texts for ASR and normalisation: auto (from the script), ar, en, ...",
    )
    p.add_argument("--max_samples", type=int, default=None, help="evaluate only the first N samples")
    p.add_argument("--seed", type=int, default=1234, help="sample i is generated with seed + i by both models")
    p.add_argument("--temperature", type=float, default=0.3, help="0 = greedy")
    p.add_argument("--top_k", type=int, default=50, help="sample among the K most likely codes")
    p.add_argument("--top_p", type=float, default=0.95, help="nucleus sampling mass")
    p.add_argument("--ras_win_len", type=int, default=7, help="repetition-aware sampling window (0 = off)")
    p.add_argument("--max_new_tokens", type=int, default=2048, help="hard cap on generated audio frames (40 ms each)")
    p.add_argument(
        "--max_length_ratio",
        type=float,
        default=3.0,
        help="also stop a clip at this many times its target's length (0 = off); such clips count as not stopping",
    )
    p.add_argument("--device", default=None, help="cuda or cpu (default: cuda if available)")
    p.add_argument(
        "--dtype",
        default="auto",
        help="auto (CUDA: bf16, fp16 on GPUs without native bf16, fp32 for weights stored in fp32; CPU: fp32), bf16, fp16, fp32",
    )


def run(args) -> int:
    from ..eval.run import EvalConfig, EvalInterrupted, evaluate
    from .common import report_interrupt

    keys = EvalConfig.__dataclass_fields__.keys()
    try:
        report = evaluate(EvalConfig(**{k: getattr(args, k) for k in keys if hasattr(args, k)}))
    except EvalInterrupted as done:
        return report_interrupt(str(done))
    print(f"wrote {report} (with results.csv, summary.json and plots) in {report.parent}")
    return 0
