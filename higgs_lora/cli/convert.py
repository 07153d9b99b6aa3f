"""`higgs-lora convert IN... --output OUT.jsonl`: other layouts, flat records and folders of clips -> canonical JSONL."""

from __future__ import annotations

from .common import add_system_prompt

NAME = "convert"
SUMMARY = "convert other sample layouts, flat records or a folder of clips (metadata.csv) into canonical JSONL"


def add_arguments(p) -> None:
    p.add_argument("inputs", nargs="+", metavar="IN",
                   help="JSON/JSONL files (four-message + target_audio, public-trainer layout, flat records, "
                        "canonical) or folders with metadata.csv (audio|text|speaker, or id|text with --speaker)")
    p.add_argument("--output", required=True, metavar="OUT.jsonl", help="canonical five-message JSONL to write")
    p.add_argument("--speaker", default=None, help="speaker of every clip of an LJSpeech-style id|text metadata.csv")
    p.add_argument("--refs_per_target", type=int, default=1, metavar="K",
                   help="folders: samples per target clip, each with a different reference clip of the same speaker")
    p.add_argument("--seed", type=int, default=0, help="folders: seed of the reference draw (same seed, same pairs)")
    p.add_argument("--ref_min_seconds", type=float, default=None, help="folders: shortest clip usable as a reference")
    p.add_argument("--ref_max_seconds", type=float, default=None, help="folders: longest clip usable as a reference")
    p.add_argument("--overwrite", action="store_true", help="replace OUT if it exists")
    p.add_argument("--report", default=None, metavar="R.json", help="write what was converted and dropped (and why) here")
    add_system_prompt(p)


def run(args) -> int:
    import json
    from pathlib import Path

    from ..data.convert import convert

    report = convert(args.inputs, args.output, system_prompt=args.system_prompt, speaker=args.speaker,
                     refs_per_target=args.refs_per_target, seed=args.seed, ref_min_seconds=args.ref_min_seconds,
                     ref_max_seconds=args.ref_max_seconds, overwrite=args.overwrite)
    print(report.summary())
    if args.report:
        Path(args.report).write_text(json.dumps(report.to_dict(), indent=2, ensure_ascii=False), encoding="utf-8")
        print(f"report written to {args.report}")
    print(f"next: higgs-lora validate {args.output}")
    return 0
