"""A data file's records: a JSON list of samples, a JSON object with a "samples" list, or JSON Lines
(read line by line, so a 10 GB JSONL file never sits in memory as text).

What each record holds is `formats`' business; here a file is only read, and a file that cannot be read
raises DataFileError naming it and where it stops being readable.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

# Keys that make a lone JSON object a sample (or a wrapper of samples) rather than some other file.
_SAMPLE_KEYS = ("messages", "ref_audio", "ref_text", "target_text", "target_audio", "samples")


@dataclass
class DataFileError(ValueError):
    """A data file that cannot be read: which file, and why."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


def _sample_like(obj) -> bool:
    return isinstance(obj, dict) and any(k in obj for k in _SAMPLE_KEYS)


def not_a_data_file(path: str | Path) -> str:
    """Why `path` cannot be read as a data file: a folder (of clips, most likely) or nothing at all."""
    path = Path(path)
    if path.is_dir():
        return (
            f"is a folder, not a data file; for a folder of clips and transcripts run "
            f"`higgs-lora convert {path} --output {path.stem or 'data'}.jsonl` first, then use the .jsonl"
        )
    return "data file not found"


def iter_records(path: str | Path) -> Iterator:
    """The records of a data file, one at a time. JSON Lines are streamed; a JSON document is parsed whole.

    Raises DataFileError naming the file and where it stops being readable."""
    path = Path(path)
    if not path.is_file():
        raise DataFileError(str(path), not_a_data_file(path))
    try:
        # -sig: files saved by Windows editors start with a BOM
        with open(path, encoding="utf-8-sig") as f:
            yield from _records(path, f)
    except UnicodeDecodeError as err:
        raise DataFileError(str(path), f"not UTF-8 text ({err.reason} at byte {err.start})") from None


def _records(path: Path, f) -> Iterator:
    lineno, first = 0, ""
    for line in f:
        lineno += 1
        if line.strip():
            first = line
            break
    if not first:
        return  # an empty file has no samples
    stripped = first.strip()
    # A .jsonl file is read line by line whatever its lines hold (each is a record to classify); any
    # other file is JSON Lines when its first line is a whole JSON object.
    lines_only = path.suffix.lower() in (".jsonl", ".ndjson")
    record, is_lines = None, False
    if lines_only or stripped.startswith("{"):
        try:
            record, is_lines = json.loads(stripped), True
        except json.JSONDecodeError:
            pass
    if not is_lines:
        # A JSON document (list, {"samples": ...}, a pretty-printed object): parse it whole.
        text = first + f.read()
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            where = f"line {err.lineno + lineno - 1} column {err.colno}"
            raise DataFileError(str(path), f"not valid JSON nor JSON Lines ({err.msg} at {where})") from None
        if isinstance(data, dict) and isinstance(data.get("samples"), list):
            yield from data["samples"]
        elif isinstance(data, list):
            yield from data
        elif _sample_like(data):
            yield data
        else:
            raise DataFileError(str(path), 'expected a list of samples, {"samples": [...]}, or JSON Lines')
        return
    # JSON Lines: one record per line, streamed.
    pending = [record]  # held back only to tell a lone non-sample object (not a data file) from a record
    for line in f:
        lineno += 1
        if not line.strip():
            continue
        if pending:
            yield from _unwrap(pending.pop())
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            raise DataFileError(str(path), f"line {lineno} is not valid JSON ({err.msg}, column {err.colno})") from None
        yield from _unwrap(record)
    if pending:
        if not lines_only and not _sample_like(pending[0]):
            raise DataFileError(str(path), 'expected a list of samples, {"samples": [...]}, or JSON Lines')
        yield from _unwrap(pending.pop())


def _unwrap(record):
    if isinstance(record, dict) and isinstance(record.get("samples"), list) and "messages" not in record:
        return list(record["samples"])
    return [record]


def read_records(path: str | Path) -> list:
    """All records of a data file (see iter_records)."""
    return list(iter_records(path))
