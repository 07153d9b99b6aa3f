"""`higgs-lora convert IN... --output OUT.jsonl`: other layouts, flat records and corpora of clips (metadata.csv
folders, Common Voice releases, Kaldi data dirs, Hugging Face datasets) -> canonical JSONL."""

from __future__ import annotations

from .common import add_system_prompt

NAME = "convert"
SUMMARY = (
    "convert other sample layouts, flat records or a corpus (metadata.csv folder, Common Voice release, "
    "Kaldi data dir, Hugging Face dataset) into canonical, speaker-paired JSONL"
)


def add_arguments(p) -> None:
    from ..data.audio_check import MAX_SECONDS, MIN_SECONDS
    from ..data.corpora import FORMATS

    p.add_argument(
        "inputs",
        nargs="+",
        metavar="IN",
        help="JSON/JSONL files (four-message + target_audio, public-trainer layout, flat records, "
        "canonical); folders with metadata.csv (audio|text|speaker, or id|text with --speaker); "
        "Common Voice release folders; Kaldi data dirs; Hugging Face parquet/arrow folders or a "
        "hub dataset id",
    )
    p.add_argument("--output", required=True, metavar="OUT.jsonl", help="canonical five-message JSONL to write")
    p.add_argument(
        "--format",
        default="auto",
        choices=FORMATS,
        help="the inputs' layout; auto: found from what each file or folder holds",
    )
    p.add_argument(
        "--split",
        default=None,
        help="Common Voice: the TSV to read (validated, train, dev, test; default validated); "
        "Hugging Face: the split's shards (default train where shards are split-named)",
    )
    p.add_argument("--text_column", default=None, help="Hugging Face: transcript column (default: found by name)")
    p.add_argument("--speaker_column", default=None, help="Hugging Face: speaker column (default: found by name)")
    p.add_argument("--audio_column", default=None, help="Hugging Face: audio column (default: found by name)")
    p.add_argument(
        "--speaker",
        default=None,
        help="speaker of every clip where the corpus names none (LJSpeech-style id|text metadata.csv, "
        "a one-speaker Hugging Face dataset or Kaldi dir)",
    )
    p.add_argument(
        "--refs_per_target",
        type=int,
        default=1,
        metavar="K",
        help="corpora: samples per target clip, each with a different reference clip of the same speaker",
    )
    p.add_argument("--seed", type=int, default=0, help="corpora: seed of the reference draw (same seed, same pairs)")
    p.add_argument("--ref_min_seconds", type=float, default=None, help="corpora: shortest clip usable as a reference")
    p.add_argument("--ref_max_seconds", type=float, default=None, help="corpora: longest clip usable as a reference")
    p.add_argument(
        "--min_seconds",
        type=float,
        default=MIN_SECONDS,
        help="corpora: clips shorter than this are dropped (validate's limit)",
    )
    p.add_argument(
        "--max_seconds",
        type=float,
        default=MAX_SECONDS,
        help="corpora: clips longer than this are dropped (validate's limit)",
    )
    p.add_argument("--overwrite", action="store_true", help="replace OUT if it exists")
    p.add_argument(
        "--report", default=None, metavar="R.json", help="write what was converted and dropped (and why) here"
    )
    add_system_prompt(p)


def run(args) -> int:
    import json
    from pathlib import Path

    from ..data.convert import convert

    report = convert(
        args.inputs,
        args.output,
        system_prompt=args.system_prompt,
        speaker=args.speaker,
        refs_per_target=args.refs_per_target,
        seed=args.seed,
        ref_min_seconds=args.ref_min_seconds,
        ref_max_seconds=args.ref_max_seconds,
        overwrite=args.overwrite,
        format=args.format,
        split=args.split,
        text_column=args.text_column,
        speaker_column=args.speaker_column,
        audio_column=args.audio_column,
        min_seconds=args.min_seconds,
        max_seconds=args.max_seconds,
    )
    print(report.summary())
    if args.report:
        Path(args.report).write_text(json.dumps(report.to_dict(), indent=2, ensure_ascii=False), encoding="utf-8")
        print(f"report written to {args.report}")
    print(f"next: higgs-lora validate {args.output}")
    return 0
