"""`higgs-lora check-alignment`: prove training and inference see the same thing."""

from __future__ import annotations

import argparse

from ..defaults import AUDIO_TOKENIZER, BASE_MODEL
from ..train.config import TrainConfig
from .common import add_mixed_precision, add_text_normalization

NAME = "check-alignment"
SUMMARY = "prove training and inference see the same thing"


def add_arguments(p) -> None:
    p.add_argument(
        "--train_data",
        default=None,
        help="ChatML JSON/JSONL training file (default with --lora_path: the run's own training data)",
    )
    # Defaults of None: what is not given comes from the training run's higgs_lora_run.json
    # (--lora_path, or a merged folder as --base_model), then from the built-in defaults.
    p.add_argument(
        "--lora_path",
        default=None,
        help="check THIS training run (a training --output_dir): its settings (base model, codec, system "
        "prompt, text normalisation), its samples, and its adapter loaded as infer loads it, judged by "
        "teacher-forced agreement with the adapter on vs off; nothing is fitted",
    )
    p.add_argument(
        "--base_model", default=None, help=f"hub id, folder or tiny (default: the training run's, else {BASE_MODEL})"
    )
    p.add_argument(
        "--audio_tokenizer",
        default=None,
        help=f"hub id, folder or tiny (default: the training run's, else {AUDIO_TOKENIZER})",
    )
    p.add_argument("--report", default=None, help="write the JSON report here")
    p.add_argument(
        "--skip_overfit",
        action="store_true",
        help="only the cheap checks (prompt parity, label audit): needs the model config, not its weights",
    )
    p.add_argument("--overfit_sample", type=int, default=0, help="index of the sample to overfit")
    # The fit is `train`'s recipe: these are train's flags, with train's defaults, except the LoRA size and
    # schedule, which fit_settings chooses per model size unless given.
    d = TrainConfig(train_data="")
    p.add_argument("--overfit_params", default=None, help=argparse.SUPPRESS)  # removed: see run()
    p.add_argument(
        "--lora_r",
        type=int,
        default=None,
        help="LoRA rank of the fit (default: 64 on the tiny model, whose hidden size it is; 16 on larger ones)",
    )
    p.add_argument("--lora_alpha", type=int, default=None, help="LoRA scaling numerator of the fit (default: 2 x rank)")
    p.add_argument(
        "--lora_targets",
        nargs="+",
        default=d.lora_targets,
        metavar="SUFFIX",
        help="module-name suffixes the fit adapts, as in train (default: train's)",
    )
    p.add_argument("--text_loss_weight", type=float, default=d.text_loss_weight, help="as in train")
    p.add_argument("--audio_loss_weight", type=float, default=d.audio_loss_weight, help="as in train")
    p.add_argument("--consistency_loss_weight", type=float, default=d.consistency_loss_weight, help="as in train")
    p.add_argument(
        "--overfit_mode",
        choices=["auto", "regenerate", "teacher_forced"],
        default="auto",
        help="regenerate: greedy generation must reproduce the target exactly (auto below 50M parameters: the tiny "
        "model); teacher_forced: the argmax at every target position must equal it (auto above)",
    )
    p.add_argument(
        "--max_steps",
        type=int,
        default=None,
        help="most optimizer steps of the fit; it stops at the first pass (default: 400 on the tiny model, 100 on larger ones)",
    )
    p.add_argument(
        "--learning_rate",
        type=float,
        default=None,
        help="peak learning rate of the fit (cosine, as in train; default: 3e-3 on the tiny model, 1e-3 on larger ones; "
        "3e-3 diverges on the released model)",
    )
    p.add_argument(
        "--check_every",
        type=int,
        default=None,
        help="judge the fit every N steps (default: 25 on the tiny model, 5 on larger ones)",
    )
    add_mixed_precision(p, "precision of the fit, as in training (auto: bf16 on CUDA, no on CPU)")
    p.add_argument(
        "--native_parity",
        action="store_true",
        help="also compare each inference prompt with the one transformers' native Higgs Audio v2 "
        "processor builds (independent code; needs the real codec and the native-transformers "
        "folder `make setup` installs; see docs/native.md)",
    )
    p.add_argument(
        "--native_min_code_agreement",
        type=float,
        default=0.99,
        metavar="F",
        help="--native_parity: share of reference codes that must agree; text ids and stream BOS/EOS "
        "must agree exactly. Two implementations of the same codec compute in a different float "
        "order, so a code at a near-tie between two codebook entries may flip (default 0.99)",
    )
    p.add_argument("--max_samples", type=int, default=None, help="check only the first N samples")
    p.add_argument("--device", default=None, help="cuda or cpu (default: cuda if available)")
    p.add_argument(
        "--system_prompt",
        default=None,
        help='system prompt for samples without one ("" for none) (default: the training run\'s, '
        "else the project default)",
    )
    add_text_normalization(p, from_run=True)


def run(args) -> int:
    from ..checks.run import run_checks
    from ..data.codes import load_codec
    from ..data.validate import load_samples
    from ..infer.run_settings import resolve
    from ..model.folder_checks import check_model_complete
    from ..model.load import default_device, load_model, load_tokenizer
    from ..model.precision import resolve_precision
    from ..model.resolve import check_codec_source, model_folder

    if args.overfit_params is not None:
        raise ValueError(
            f"--overfit_params {args.overfit_params}: removed; the fit now runs train's recipe, which trains a "
            f"LoRA only (size it with --lora_r)"
        )
    if args.lora_path:
        from ..infer.run_settings import find_run_config
        from ..train.config import RUN_CONFIG

        _, run_config = find_run_config(args.lora_path)
        if not run_config:
            raise ValueError(f"--lora_path {args.lora_path}: no {RUN_CONFIG} (pass a training --output_dir)")
        args.train_data = args.train_data or run_config.get("train_data")
    if not args.train_data:
        raise ValueError("--train_data is required (or --lora_path RUN, whose training data is then used)")
    settings = resolve(
        {
            "base_model": args.base_model,
            "audio_tokenizer": args.audio_tokenizer,
            "system_prompt": args.system_prompt,
            "text_normalization": args.text_normalization,
        },
        args.lora_path,
        args.base_model,
    )
    settings.report()
    args.base_model, args.audio_tokenizer = settings["base_model"], settings["audio_tokenizer"]
    # Before anything loads: a partly copied model or codec folder is named with what it lacks.
    check_model_complete(args.base_model, weights=not args.skip_overfit)
    check_codec_source(args.audio_tokenizer)
    args.text_normalization = settings["text_normalization"]
    # Raw transcripts: run_checks normalises them on each side, so a side that skips it shows up.
    samples = load_samples(args.train_data, settings["system_prompt"], text_normalization="none")
    if args.max_samples:
        samples = samples[: args.max_samples]
    if not 0 <= args.overfit_sample < len(samples):
        raise ValueError(f"--overfit_sample {args.overfit_sample}: the data has {len(samples)} samples")
    device = args.device or default_device()
    precision = resolve_precision(args.mixed_precision, device)
    # --skip_overfit needs the config and tokenizer only: a hub id then fetches no weights either.
    model_source = str(model_folder(args.base_model, weights=False)) if args.skip_overfit else args.base_model
    tokenizer = load_tokenizer(model_source)
    model = config = None
    codec = None
    if args.lora_path and not args.skip_overfit:
        from ..infer.engine import VoiceCloner

        # The run's adapter exactly as `infer` serves it: same loader, dtype rule, unmerged adapter.
        cloner = VoiceCloner.load(args.base_model, args.lora_path, args.audio_tokenizer, device=device, cache="dynamic")
        model, codec = cloner.model, cloner.codec
    elif args.skip_overfit:
        from boson_multimodal.model.higgs_audio import HiggsAudioConfig

        config = HiggsAudioConfig.from_pretrained(model_source)
    else:
        # The base model only: train's recipe adds the LoRA and the precision scheme, as for a run.
        model = load_model(args.base_model, device=device, dtype=precision.weights_dtype)
    codec = codec or load_codec(args.audio_tokenizer, device=device)
    parity_checks = ()
    if args.native_parity:
        if args.audio_tokenizer == "tiny":
            raise ValueError("--native_parity needs the real audio tokenizer: the `tiny` stand-in has no native twin")
        from ..native.parity import alignment_check

        parity_checks = (alignment_check(args.base_model, args.audio_tokenizer, args.native_min_code_agreement),)
    report = run_checks(
        samples,
        model,
        tokenizer,
        codec,
        overfit=not args.skip_overfit and not args.lora_path,
        adapter=bool(args.lora_path) and not args.skip_overfit,
        config=config,
        overfit_index=args.overfit_sample,
        max_steps=args.max_steps,
        learning_rate=args.learning_rate,
        check_every=args.check_every,
        precision=precision,
        mode=None if args.overfit_mode == "auto" else args.overfit_mode,
        text_normalization=args.text_normalization,
        parity_checks=parity_checks,
        lora_r=args.lora_r,
        lora_alpha=args.lora_alpha,
        train_config=TrainConfig(
            train_data=args.train_data,
            base_model=args.base_model,
            audio_tokenizer=args.audio_tokenizer,
            lora_targets=args.lora_targets,
            text_loss_weight=args.text_loss_weight,
            audio_loss_weight=args.audio_loss_weight,
            consistency_loss_weight=args.consistency_loss_weight,
        ),
    )
    report.meta.update(
        base_model=args.base_model,
        audio_tokenizer=args.audio_tokenizer,
        train_data=args.train_data,
        lora_path=args.lora_path,
    )
    print("alignment OK" if report.ok else "alignment FAILED: " + ", ".join(c.name for c in report.checks if not c.ok))
    if args.report:
        report.write(args.report)
        print(f"report written to {args.report}")
    return 0 if report.ok else 1
