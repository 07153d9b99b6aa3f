"""`higgs-lora validate DATA`: every sample valid or listed with its index, id and reason codes.

Exit 0 when all samples are valid, 1 when some are not, 2 when the file itself cannot be read or holds
no sample (training refuses such a file too).
"""

from __future__ import annotations

from .common import add_system_prompt, add_text_normalization

NAME = "validate"
SUMMARY = "list invalid samples with index and reason codes; exit 1 if any, 2 if the file is unreadable"


def add_arguments(p) -> None:
    from ..constants import CLIP_SILENCE_DBFS
    from ..data.audio_check import MAX_SECONDS, MIN_SECONDS
    from ..data.text import MAX_CHARS_PER_SECOND, MIN_CHARS_PER_SECOND

    p.add_argument("data", help='JSON list, {"samples": [...]} or JSONL file (any accepted sample layout)')
    p.add_argument("--for_inference", action="store_true", help="target audio not required (inference input)")
    p.add_argument(
        "--report", default=None, metavar="R.json", help="write every invalid sample and warning as JSON here"
    )
    p.add_argument("--min_duration", type=float, default=MIN_SECONDS, help="shortest clip in seconds")
    p.add_argument("--max_duration", type=float, default=MAX_SECONDS, help="longest clip in seconds")
    p.add_argument(
        "--silence_dbfs", type=float, default=CLIP_SILENCE_DBFS, help="clips with an RMS level below this are silent"
    )
    p.add_argument(
        "--min_chars_per_second",
        type=float,
        default=MIN_CHARS_PER_SECOND,
        help="speaking-rate warning below this (letters and digits per second of audio)",
    )
    p.add_argument(
        "--max_chars_per_second", type=float, default=MAX_CHARS_PER_SECOND, help="speaking-rate warning above this"
    )
    p.add_argument("--allow_remote_audio", action="store_true", help="accept http(s) audio URLs (not checked)")
    p.add_argument("--workers", type=int, default=1, help="processes decoding audio in parallel")
    p.add_argument(
        "--examples", type=int, default=20, help="invalid samples printed on the console (the report has all)"
    )
    add_system_prompt(p)
    add_text_normalization(p)


def run(args) -> int:
    from ..data.validate import validate_file

    report = validate_file(
        args.data,
        args.system_prompt,
        require_target=not args.for_inference,
        min_duration=args.min_duration,
        max_duration=args.max_duration,
        silence_dbfs=args.silence_dbfs,
        allow_remote_audio=args.allow_remote_audio,
        workers=args.workers,
        text_normalization=args.text_normalization,
        min_chars_per_second=args.min_chars_per_second,
        max_chars_per_second=args.max_chars_per_second,
        progress=True,
    )
    if not report.total:
        raise ValueError(f"{args.data}: the file holds no samples (an empty list or a blank file)")
    print(report.summary(limit=args.examples))
    if args.report:
        report.write(args.report)
        print(f"report written to {args.report}")
    return 0 if report.ok else 1
