"""A folder of clips with `metadata.csv`: `audio|text|speaker` rows, or LJSpeech `id|text[|normalized text]`
rows with one `--speaker` for all."""

from __future__ import annotations

import csv
from pathlib import Path

from ..clips import ClipRow
from ..convert_report import ConvertReport

METADATA = "metadata.csv"
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3")


def _find_audio(folder: Path, name: str) -> Path | None:
    candidates = [folder / name]
    if not Path(name).suffix:
        candidates += [folder / sub / f"{name}{ext}" for sub in ("wavs", ".") for ext in AUDIO_SUFFIXES]
    return next((c for c in candidates if c.is_file()), None)


def metadata_rows(source: Path, speaker: str | None, report: ConvertReport):
    """Clips of a folder's metadata.csv: `audio|text|speaker` rows, or LJSpeech `id|text[|normalized text]`
    rows with a fixed `speaker`. Clips that are missing are dropped and reported."""
    csv_path = source / METADATA if source.is_dir() else source
    folder = csv_path.parent
    if not csv_path.is_file():
        raise FileNotFoundError(
            f"{source}: no {METADATA} (expected rows audio|text|speaker, or id|text with --speaker)"
        )
    try:
        with open(csv_path, encoding="utf-8-sig", newline="") as f:
            rows = list(csv.reader(f, delimiter="|", quoting=csv.QUOTE_NONE))
    except UnicodeDecodeError as err:
        raise ValueError(f"{csv_path}: not UTF-8 text ({err.reason} at byte {err.start}); save it as UTF-8") from None
    except csv.Error as err:  # e.g. a field over csv's size limit: not a ValueError, would show a traceback
        raise ValueError(f"{csv_path}: not a |-separated metadata file ({err})") from None
    out = []
    for lineno, row in enumerate(rows, 1):
        row = [cell.strip() for cell in row]
        if not any(row):
            continue
        if lineno == 1 and [c.lower() for c in row[:2]] in (["audio", "text"], ["id", "text"]):
            continue  # header
        where = f"line {lineno}"
        if speaker is not None:
            if len(row) < 2:
                report.drop(csv_path, where, "no_target_text", "expected id|text", speaker)
                continue
            # LJSpeech's third column is the transcript with numbers spelled out: what is spoken.
            text = row[2] if len(row) > 2 and row[2] else row[1]
            name, spk = row[0], speaker
        else:
            if len(row) < 3:
                raise ValueError(
                    f"{csv_path} {where}: expected audio|text|speaker; for id|text rows "
                    "(LJSpeech style) give the speaker with --speaker"
                )
            name, text, spk = row[0], row[1], row[2]
            if not Path(name).suffix:
                raise ValueError(
                    f"{csv_path} {where}: {name!r} is not an audio file name; for LJSpeech-style "
                    "id|text[|normalized text] rows give the speaker with --speaker"
                )
        report.count_read(spk)
        if not text:
            report.drop(csv_path, where, "empty_text", f"{name}: empty transcript", spk)
            continue
        audio = _find_audio(folder, name)
        if audio is None:
            report.drop(csv_path, where, "audio_not_found", f"{name}: no such audio in {folder}", spk)
            continue
        out.append(ClipRow(name, str(audio), text, spk, where))
    return out
