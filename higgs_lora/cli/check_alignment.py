"""`higgs-lora check-alignment`: prove training and inference see the same thing."""

from __future__ import annotations

from ..defaults import AUDIO_TOKENIZER, BASE_MODEL

NAME = "check-alignment"
SUMMARY = "prove training and inference see the same thing"


def add_arguments(p) -> None:
    p.add_argument("--train_data", required=True, help="ChatML JSON/JSONL training file")
    # Defaults of None: what is not given comes from the training run's higgs_lora_run.json
    # (--lora_path, or a merged folder as --base_model), then from the built-in defaults.
    p.add_argument("--lora_path", default=None,
                   help="a training --output_dir whose run settings (base model, codec, system prompt, text "
                        "normalisation) become the defaults here; the check trains its own throwaway weights")
    p.add_argument("--base_model", default=None,
                   help=f"hub id, folder or tiny (default: the training run's, else {BASE_MODEL})")
    p.add_argument("--audio_tokenizer", default=None,
                   help=f"hub id, folder or tiny (default: the training run's, else {AUDIO_TOKENIZER})")
    p.add_argument("--report", default=None, help="write the JSON report here")
    p.add_argument("--skip_overfit", action="store_true", help="only the cheap checks (prompt parity, label audit)")
    p.add_argument("--overfit_sample", type=int, default=0, help="index of the sample to overfit")
    p.add_argument("--overfit_params", choices=["auto", "full", "lora"], default="auto",
                   help="train all weights (auto for tiny) or a LoRA adapter (auto for real models)")
    p.add_argument("--max_steps", type=int, default=400, help="most optimizer steps for the overfit check (it stops early on an exact match)")
    p.add_argument("--learning_rate", type=float, default=3e-3, help="learning rate of the overfit check")
    p.add_argument("--max_samples", type=int, default=None, help="check only the first N samples")
    p.add_argument("--device", default=None, help="cuda or cpu (default: cuda if available)")
    p.add_argument("--system_prompt", default=None,
                   help="system prompt for samples without one (\"\" for none) (default: the training run's, "
                        "else the project default)")


def run(args) -> int:
    from ..checks import run_checks
    from ..data.codes import load_codec
    from ..infer.run_settings import load_samples_with_normalization, resolve
    from ..model.load import apply_lora, default_device, load_model, load_tokenizer

    settings = resolve({"base_model": args.base_model, "audio_tokenizer": args.audio_tokenizer,
                        "system_prompt": args.system_prompt, "text_normalization": None},
                       args.lora_path, args.base_model)
    settings.report()
    args.base_model, args.audio_tokenizer = settings["base_model"], settings["audio_tokenizer"]
    samples = load_samples_with_normalization(args.train_data, settings["system_prompt"],
                                              settings["text_normalization"], require_target=True)
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

