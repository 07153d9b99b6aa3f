"""The `higgs-lora` command: argument parsing only, one subcommand per pipeline stage.

    higgs-lora create-sample-data OUT.json      small canonical data set with real speech
    higgs-lora validate DATA                    list invalid samples (exit 1 if any)
    higgs-lora train --train_data DATA ...      LoRA fine-tuning (torchrun for several GPUs)
    higgs-lora merge --base_model B --lora_path L --output_path O
    higgs-lora infer --chatml_file F --output_dir D --model_path M [--lora_path L]
    higgs-lora check-alignment --train_data F --base_model B --audio_tokenizer T [--report R.json]

`tiny` names the offline random-weight model (--base_model/--model_path) or codec (--audio_tokenizer).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

from .defaults import AUDIO_TOKENIZER, BASE_MODEL, DEFAULT_SYSTEM_PROMPT

class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Shows each option's default unless its help already states it."""

    def _get_help_string(self, action):
        text = action.help or ""
        if action.option_strings and "(default" not in text and action.default not in (None, False, argparse.SUPPRESS):
            text += " (default: %(default)s)"
        return text


def _add_system_prompt(p: argparse.ArgumentParser) -> None:
    p.add_argument("--system_prompt", default=DEFAULT_SYSTEM_PROMPT,
                   help="system prompt for samples without one (\"\" for none); training and inference share it "
                        f"(default: {DEFAULT_SYSTEM_PROMPT!r})")


def add_train_arguments(p: argparse.ArgumentParser) -> None:
    from .model.load import DEFAULT_LORA_TARGETS
    from .train.recipe import TrainConfig

    d = TrainConfig(train_data="")
    p.add_argument("--train_data", help="canonical ChatML JSON/JSONL file (see README)")
    p.add_argument("--output_dir", default=None, help=f"checkpoints, final adapter, metrics.jsonl (default: {d.output_dir})")
    p.add_argument("--base_model", default=None, help=f"hub id, local folder or tiny (default: {BASE_MODEL}; tiny with --quick_test)")
    p.add_argument("--audio_tokenizer", default=None, help=f"hub id, local folder or tiny (default: {AUDIO_TOKENIZER}; tiny with --quick_test and no --base_model)")
    _add_system_prompt(p)
    p.add_argument("--batch_size", type=int, default=d.batch_size, help="samples per GPU per micro-batch")
    p.add_argument("--gradient_accumulation_steps", type=int, default=d.gradient_accumulation_steps, help="micro-batches per optimizer step; effective batch = batch_size x this x GPUs")
    p.add_argument("--learning_rate", type=float, default=d.learning_rate, help="peak learning rate (cosine schedule after warmup)")
    p.add_argument("--num_epochs", type=float, default=d.num_epochs, help="passes over the data (ignored when --max_steps > 0)")
    p.add_argument("--max_steps", type=int, default=d.max_steps, help="stop after this many optimizer steps (-1: use epochs)")
    p.add_argument("--warmup_ratio", type=float, default=d.warmup_ratio, help="fraction of steps spent warming up the learning rate")
    p.add_argument("--lora_r", type=int, default=d.lora_r, help="LoRA rank")
    p.add_argument("--lora_alpha", type=int, default=d.lora_alpha, help="LoRA scaling numerator (scale = alpha / r)")
    p.add_argument("--lora_dropout", type=float, default=d.lora_dropout, help="dropout on the LoRA branch")
    p.add_argument("--lora_targets", nargs="+", default=DEFAULT_LORA_TARGETS, metavar="SUFFIX",
                   help="module-name suffixes to adapt; missing ones are skipped (default: attention, mlp, audio_mlp, both heads)")
    p.add_argument("--text_loss_weight", type=float, default=d.text_loss_weight, help="weight of the shifted text cross-entropy")
    p.add_argument("--audio_loss_weight", type=float, default=d.audio_loss_weight, help="weight of the shifted per-codebook audio cross-entropy")
    p.add_argument("--mixed_precision", action=argparse.BooleanOptionalAction, default=True,
                   help="bf16 on CUDA (default on; ignored on CPU)")
    p.add_argument("--use_gradient_checkpointing", action="store_true", help="recompute decoder layers in backward to save memory")
    p.add_argument("--dataloader_num_workers", type=int, default=d.dataloader_num_workers, help="data loading processes per GPU")
    p.add_argument("--logging_steps", type=int, default=d.logging_steps, help="log (console, TensorBoard, metrics.jsonl) every N optimizer steps")
    p.add_argument("--save_steps", type=int, default=d.save_steps, help="write a resumable checkpoint every N optimizer steps")
    p.add_argument("--save_total_limit", type=int, default=d.save_total_limit, help="keep at most N checkpoints (oldest deleted)")
    p.add_argument("--seed", type=int, default=d.seed, help="seed for data order, dropout and LoRA init")
    p.add_argument("--resume_from_checkpoint", default=None, help="checkpoint folder to resume from")
    p.add_argument("--report_to", default=d.report_to, choices=["tensorboard", "none"], help="TensorBoard logs in OUTPUT_DIR/runs, or none")
    p.add_argument("--quick_test", action="store_true",
                   help="a few steps on a few samples; without --base_model uses the tiny model and codec (no download)")


def train_config_from_args(args: argparse.Namespace):
    from .train.recipe import TrainConfig

    tiny_quick = args.quick_test and args.base_model is None
    base_model = args.base_model or ("tiny" if tiny_quick else BASE_MODEL)
    audio_tokenizer = args.audio_tokenizer or ("tiny" if tiny_quick else AUDIO_TOKENIZER)
    output_dir = args.output_dir or ("checkpoints/quick_test" if args.quick_test else "checkpoints/voice_cloning")
    train_data = args.train_data
    if train_data is None:
        if not args.quick_test:
            raise SystemExit("error: --train_data is required (or use --quick_test, which makes sample data)")
        from .data.sample_data import create_sample_data

        train_data = str(create_sample_data(Path(output_dir) / "sample_data.json", overwrite=True))
    keys = TrainConfig.__dataclass_fields__.keys()
    values = {k: getattr(args, k) for k in keys if hasattr(args, k)}
    values.update(train_data=train_data, base_model=base_model, audio_tokenizer=audio_tokenizer, output_dir=output_dir)
    return TrainConfig(**values)


def cmd_create_sample_data(args) -> int:
    from .data.sample_data import create_sample_data

    out = create_sample_data(args.out_json, n_samples=args.n_samples, system_prompt=args.system_prompt, overwrite=args.overwrite)
    n = len(json.loads(Path(out).read_text(encoding="utf-8")))
    print(f"wrote {n} samples to {out}")
    return 0


def cmd_validate(args) -> int:
    from .data.validate import validate_file

    report = validate_file(args.data, args.system_prompt, require_target=not args.for_inference)
    print(report.summary())
    return 0 if report.ok else 1


def cmd_train(args) -> int:
    from .train.recipe import train

    out = train(train_config_from_args(args))
    print(f"adapter saved to {out}")
    return 0


def cmd_merge(args) -> int:
    from .infer.merge import merge_adapter

    out = merge_adapter(args.base_model, args.lora_path, args.output_path, dtype=args.dtype, overwrite=args.overwrite)
    print(f"merged model saved to {out}")
    return 0


def cmd_infer(args) -> int:
    from tqdm.auto import tqdm

    from .data.audio import write_wav
    from .data.validate import load_samples
    from .infer.engine import GenerationSettings, VoiceCloner

    samples = load_samples(args.chatml_file, args.system_prompt, require_target=False)
    cloner = VoiceCloner.load(args.model_path, args.lora_path, args.audio_tokenizer, device=args.device, dtype=args.dtype)
    settings = GenerationSettings(max_new_tokens=args.max_new_tokens, temperature=args.temperature, top_k=args.top_k,
                                  top_p=args.top_p, ras_win_len=args.ras_win_len, seed=args.seed)
    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    results = []
    for index, sample in enumerate(tqdm(samples, desc="Generating", unit="sample")):
        t0 = time.time()
        wav, sr, gen = cloner.clone(sample, settings)
        name = f"{index:04d}" + (f"_{sample.speaker}" if sample.speaker else "") + ".wav"
        write_wav(out / name, wav, sr)
        results.append({"index": index, "wav": name, "speaker": sample.speaker, "target_text": sample.target_text,
                        "reference_audio": sample.ref_audio, "frames": int(gen.codes.shape[1]),
                        "seconds": round(len(wav) / sr, 3), "stopped_at_eos": gen.stopped,
                        "generation_seconds": round(time.time() - t0, 2)})
        if not gen.stopped:
            print(f"warning: sample {index} hit --max_new_tokens {args.max_new_tokens} before the stream EOS", file=sys.stderr)
    (out / "results.json").write_text(json.dumps(results, indent=2, ensure_ascii=False), encoding="utf-8")
    print(f"wrote {len(results)} WAV files and results.json to {out}")
    return 0


def cmd_check_alignment(args) -> int:
    from .checks import run_checks
    from .data.codes import load_codec
    from .data.validate import load_samples
    from .model.load import apply_lora, default_device, load_model, load_tokenizer

    samples = load_samples(args.train_data, args.system_prompt)
    if args.max_samples:
        samples = samples[: args.max_samples]
    device = args.device or default_device()
    tokenizer = load_tokenizer(args.base_model)
    tiny = args.base_model == "tiny"
    model = load_model(args.base_model, device=device, dtype="fp32" if tiny else "auto")
    mode = args.overfit_params if args.overfit_params != "auto" else ("full" if tiny else "lora")
    if not args.skip_overfit and mode == "lora":
        model = apply_lora(model, r=16, alpha=32, dropout=0.0)
    codec = load_codec(args.audio_tokenizer, device=device)
    report = run_checks(samples, model, tokenizer, codec, overfit=not args.skip_overfit,
                        overfit_index=args.overfit_sample, max_steps=args.max_steps, learning_rate=args.learning_rate)
    report.meta.update(base_model=args.base_model, audio_tokenizer=args.audio_tokenizer, train_data=args.train_data,
                       overfit_params=None if args.skip_overfit else mode)
    print("alignment OK" if report.ok else "alignment FAILED: " + ", ".join(c.name for c in report.checks if not c.ok))
    if args.report:
        report.write(args.report)
        print(f"report written to {args.report}")
    return 0 if report.ok else 1


def _command(sub, name: str, summary: str) -> argparse.ArgumentParser:
    return sub.add_parser(name, help=summary, description=summary, formatter_class=HelpFormatter)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="higgs-lora", description=__doc__, formatter_class=HelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = _command(sub, "create-sample-data", "write a small sample set with real speech (offline)")
    p.add_argument("out_json", help="JSON file to write; clips are copied next to it")
    p.add_argument("--n_samples", type=int, default=None, help="keep only the first N samples (default: all 18)")
    p.add_argument("--overwrite", action="store_true", help="replace existing output")
    _add_system_prompt(p)
    p.set_defaults(func=cmd_create_sample_data)

    p = _command(sub, "validate", "list invalid samples with index and reason; exit 1 if any")
    p.add_argument("data", help="ChatML JSON/JSONL file")
    p.add_argument("--for_inference", action="store_true", help="target audio not required (inference input)")
    _add_system_prompt(p)
    p.set_defaults(func=cmd_validate)

    p = _command(sub, "train", "LoRA fine-tuning (use torchrun for several GPUs)")
    add_train_arguments(p)
    p.set_defaults(func=cmd_train)

    p = _command(sub, "merge", "fold a LoRA adapter into the base model")
    p.add_argument("--base_model", default=BASE_MODEL, help=f"hub id, folder or tiny (default: {BASE_MODEL})")
    p.add_argument("--lora_path", required=True, help="training --output_dir (or a checkpoint folder)")
    p.add_argument("--output_path", required=True, help="folder for the merged model and tokenizer")
    p.add_argument("--dtype", default="auto", help="auto (as stored), bf16, fp16, fp32")
    p.add_argument("--overwrite", action="store_true", help="replace existing output")
    p.set_defaults(func=cmd_merge)

    p = _command(sub, "infer", "clone voices: one WAV per sample + results.json")
    p.add_argument("--chatml_file", required=True, help="samples (target audio optional)")
    p.add_argument("--output_dir", required=True, help="folder for the WAV files and results.json")
    p.add_argument("--model_path", default=BASE_MODEL, help=f"merged model, base model or tiny (default: {BASE_MODEL})")
    p.add_argument("--lora_path", default=None, help="adapter to apply on top of --model_path")
    p.add_argument("--audio_tokenizer", default=AUDIO_TOKENIZER, help=f"hub id, folder or tiny (default: {AUDIO_TOKENIZER})")
    p.add_argument("--temperature", type=float, default=0.3, help="0 = greedy")
    p.add_argument("--top_k", type=int, default=50, help="sample among the K most likely codes (ignored when greedy)")
    p.add_argument("--top_p", type=float, default=0.95, help="nucleus sampling mass (ignored when greedy)")
    p.add_argument("--ras_win_len", type=int, default=7, help="repetition-aware sampling window (0 = off); it resamples repeats even at temperature 0, so use 0 for repeatable greedy output")
    p.add_argument("--max_new_tokens", type=int, default=2048, help="one audio frame (40 ms) per token")
    p.add_argument("--seed", type=int, default=None, help="sampling seed, for repeatable output")
    p.add_argument("--device", default=None, help="cuda or cpu (default: cuda if available)")
    p.add_argument("--dtype", default="auto", help="auto (bf16 on CUDA, fp32 on CPU), bf16, fp16, fp32")
    _add_system_prompt(p)
    p.set_defaults(func=cmd_infer)

    p = _command(sub, "check-alignment", "prove training and inference see the same thing")
    p.add_argument("--train_data", required=True, help="ChatML JSON/JSONL training file")
    p.add_argument("--base_model", default=BASE_MODEL, help=f"hub id, folder or tiny (default: {BASE_MODEL})")
    p.add_argument("--audio_tokenizer", default=AUDIO_TOKENIZER, help=f"hub id, folder or tiny (default: {AUDIO_TOKENIZER})")
    p.add_argument("--report", default=None, help="write the JSON report here")
    p.add_argument("--skip_overfit", action="store_true", help="only the cheap checks (prompt parity, label audit)")
    p.add_argument("--overfit_sample", type=int, default=0, help="index of the sample to overfit")
    p.add_argument("--overfit_params", choices=["auto", "full", "lora"], default="auto",
                   help="train all weights (auto for tiny) or a LoRA adapter (auto for real models)")
    p.add_argument("--max_steps", type=int, default=400, help="most optimizer steps for the overfit check (it stops early on an exact match)")
    p.add_argument("--learning_rate", type=float, default=3e-3, help="learning rate of the overfit check")
    p.add_argument("--max_samples", type=int, default=None, help="check only the first N samples")
    p.add_argument("--device", default=None, help="cuda or cpu (default: cuda if available)")
    _add_system_prompt(p)
    p.set_defaults(func=cmd_check_alignment)
    return parser


def run(func, args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        return func(args)
    except (ValueError, FileNotFoundError, FileExistsError) as err:
        # Data and path problems are the user's to fix: say what is wrong without a traceback.
        print(f"error: {err}", file=sys.stderr)
        return 2


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run(args.func, args)


if __name__ == "__main__":
    sys.exit(main())
