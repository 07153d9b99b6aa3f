"""Corpus layouts `convert` reads, each in its own module, all feeding the same path (data/clips.py):
rows of (clip file, transcript, speaker) -> durations from the headers -> pairing within each speaker.

- folder: a folder of clips with `metadata.csv`
- commonvoice: a Common Voice release folder (`validated.tsv` ..., `clips/*.mp3`)
- kaldi: a Kaldi data dir (`wav.scp`, `text`, `utt2spk`, optional `segments`)
- hf: Hugging Face dataset shards (parquet, or a `save_to_disk` folder's arrow files), or a hub dataset id

Clips a layout has to write (Kaldi segments, Hugging Face audio bytes) go under CLIPS_DIR next to the
output, named by what they hold, so a second convert finds them already there.
"""

from __future__ import annotations

import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

FORMATS = ("auto", "json", "folder", "commonvoice", "kaldi", "hf")
CLIPS_DIR = "converted_clips"
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


@dataclass(frozen=True)
class Options:
    split: str | None = None
    text_column: str | None = None
    speaker_column: str | None = None
    audio_column: str | None = None
    speaker: str | None = None  # one speaker for every clip, where the layout names none
    clips_dir: Path = Path(CLIPS_DIR)
    window: object = None  # clips.DurationWindow


def detect(name: str, format: str = "auto") -> str:
    """The layout of input `name`: `format` when given (checked against what is there), else found from
    what the file or folder holds. "hub" for a Hugging Face dataset id that is not a local path."""
    from . import commonvoice, hf, kaldi

    if format not in FORMATS:
        raise ValueError(f"--format {format!r}: expected one of {', '.join(FORMATS)}")
    path = Path(name)
    if not path.exists():
        if format in ("auto", "hf") and _HUB_ID.match(name) and not Path(name.split("/")[0]).exists():
            return "hub"
        raise FileNotFoundError(f"{name}: no such file or folder")
    if format != "auto":
        return format
    if path.is_file():
        suffix = path.suffix.lower()
        if path.name == "metadata.csv" or suffix == ".csv":
            return "folder"
        if suffix == ".tsv":
            return "commonvoice"
        if suffix in (".parquet", ".arrow"):
            return "hf"
        return "json"
    if (path / "metadata.csv").is_file():
        return "folder"
    if commonvoice.find_release(path) is not None:
        return "commonvoice"
    if kaldi.is_data_dir(path):
        return "kaldi"
    if hf.shard_files(path):
        return "hf"
    raise ValueError(
        f"{path}: none of the layouts convert reads (metadata.csv; a Common Voice release's "
        "validated.tsv with clips/; a Kaldi data dir's wav.scp, text and utt2spk; parquet or arrow "
        "shards of a Hugging Face dataset); name one with --format"
    )


def rows(kind: str, name: str, options: Options, report) -> tuple[str, object]:
    """(the name the report gives the source, its ClipRows) for a corpus input of layout `kind`."""
    from . import commonvoice, folder, hf, kaldi

    path = Path(name)
    if kind == "folder":
        csv_path = path / "metadata.csv" if path.is_dir() else path
        return str(csv_path), folder.metadata_rows(path, options.speaker, report)
    if kind == "commonvoice":
        return commonvoice.rows(path, options, report)
    if kind == "kaldi":
        return kaldi.rows(path, options, report)
    if kind == "hf":
        return hf.rows(path, options, report)
    if kind == "hub":
        return hf.rows(hf.download(name, options.split), options, report, label=name)
    raise ValueError(f"{name}: unknown layout {kind!r}")


def write_once(path: Path, write) -> None:
    """Create `path` with `write(file)` unless it exists; through a temporary file and a rename, so an
    interrupted convert never leaves a truncated clip that the next one would take as done."""
    if path.exists():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
