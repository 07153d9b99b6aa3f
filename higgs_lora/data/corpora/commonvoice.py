"""A Common Voice release folder: `validated.tsv` (or `train`/`dev`/`test.tsv` with --split), `clips/*.mp3`.

Speaker = `client_id`. A row is dropped (and counted) when its clip is also listed in `invalidated.tsv`
or has more down- than up-votes. The TSVs are read with quoting off: sentences hold quote characters
that a quoting reader would take as field delimiters and run lines together.
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

SPLITS = ("validated", "train", "dev", "test", "other")
REQUIRED = ("client_id", "path", "sentence")
# The columns of a release's TSVs as Common Voice ships them (what the benchmark and tests write); the
# reader needs only REQUIRED and reads the votes when present.
RELEASE_COLUMNS = [
    "client_id",
    "path",
    "sentence_id",
    "sentence",
    "sentence_domain",
    "up_votes",
    "down_votes",
    "age",
    "gender",
    "accents",
    "variant",
    "locale",
    "segment",
]


def find_release(folder: Path) -> Path | None:
    """The release folder: `folder` itself, or its only language folder (cv-corpus-N/ar/)."""

    def is_release(p: Path) -> bool:
        return p.is_dir() and (p / "clips").is_dir() and any((p / f"{s}.tsv").is_file() for s in SPLITS)

    if is_release(folder):
        return folder
    children = [c for c in folder.iterdir() if is_release(c)] if folder.is_dir() else []
    return children[0] if len(children) == 1 else None


def _reader(f):
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))
    return csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE)


def _paths(tsv: Path) -> set[str]:
    with open(tsv, encoding="utf-8", newline="") as f:
        return {row["path"] for row in _reader(f) if row.get("path")}


def _votes(value) -> int:
    try:
        return int(value or 0)
    except ValueError:
        return 0


def rows(source: Path, options, report):
    if source.is_file():  # a TSV given directly: its split is its name
        folder, tsv = source.parent, source
    else:
        folder = find_release(source)
        if folder is None:
            raise FileNotFoundError(
                f"{source}: not a Common Voice release (no validated.tsv/train.tsv/... with clips/)"
            )
        tsv = folder / f"{options.split or 'validated'}.tsv"
    if not tsv.is_file():
        present = sorted(p.stem for p in folder.glob("*.tsv"))
        raise FileNotFoundError(
            f"{tsv}: no such split in this release (it has {', '.join(present) or 'no TSVs'}); choose one with --split"
        )
    invalidated = folder / "invalidated.tsv"
    invalid = _paths(invalidated) if invalidated.is_file() and invalidated != tsv else set()
    return str(tsv), _rows(tsv, folder / "clips", invalid, report)


def _rows(tsv: Path, clips: Path, invalid: set[str], report):
    from ..clips import ClipRow

    with open(tsv, encoding="utf-8", newline="") as f:
        reader = _reader(f)
        missing = [c for c in REQUIRED if c not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"{tsv}: no {', '.join(missing)} column (has {reader.fieldnames}); not a Common Voice TSV")
        for lineno, row in enumerate(reader, 2):
            speaker, name = row.get("client_id") or "", row.get("path") or ""
            where = f"line {lineno}"
            report.count_read(speaker)
            if name in invalid:
                report.drop(tsv, where, "invalidated", f"{name}: also listed in invalidated.tsv", speaker)
                continue
            up, down = _votes(row.get("up_votes")), _votes(row.get("down_votes"))
            if down > up:
                report.drop(tsv, where, "down_voted", f"{name}: {down} down-votes, {up} up-votes", speaker)
                continue
            text = (row.get("sentence") or "").strip()
            if not text:
                report.drop(tsv, where, "empty_text", f"{name}: empty sentence", speaker)
                continue
            if not speaker:
                report.drop(tsv, where, "no_speaker", f"{name}: empty client_id")
                continue
            yield ClipRow(name, str(clips / name), text, speaker, where)
