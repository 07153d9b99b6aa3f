"""Hugging Face datasets: a folder of parquet shards (`data/train-00000-of-00004.parquet`), a `save_to_disk`
folder (`data-00000-of-00001.arrow`), or a hub dataset id (downloaded where the machine has network).

Read with pyarrow (the `hf` extra), one record batch at a time: the audio column's `{bytes, path}`
structs are hashed and written straight from Arrow's buffers (no copy into Python), each once as a
file under the clips folder, named by its content, so a second convert finds it already there.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

TEXT_COLUMNS = (
    "sentence",
    "text",
    "transcription",
    "transcript",
    "normalized_text",
    "text_normalized",
    "raw_transcription",
    "raw_text",
    "utterance",
)
SPEAKER_COLUMNS = ("speaker_id", "client_id", "speaker", "spk_id", "speaker_name", "reader_id", "user_id")
AUDIO_COLUMNS = ("audio", "speech", "wav", "file")
BATCH_ROWS = 64  # clips per record batch: memory is a few dozen clips whatever the shard size


def _pyarrow():
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        raise ImportError("reading Hugging Face datasets needs pyarrow: pip install 'higgs-lora[hf]'") from None
    import pyarrow.ipc  # noqa: F401
    import pyarrow.parquet  # noqa: F401

    return pyarrow


def shard_files(folder: Path, split: str | None = None) -> list[Path]:
    """The dataset's shards, in order; those of `split` when named (by file name prefix or folder),
    else the train split's when the shards are split-named, else all."""
    if folder.is_file():
        return [folder]
    files = sorted(
        p
        for p in folder.rglob("*")
        if p.suffix in (".parquet", ".arrow")
        and p.is_file()
        and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    )

    def of(name):
        return [
            p
            for p in files
            if name in p.relative_to(folder).parent.parts
            or p.name.startswith(f"{name}-")
            or p.name.startswith(f"{name}.")
        ]

    if split:
        return of(split)
    return of("train") or files


def download(repo_id: str, split: str | None) -> Path:
    """The dataset's parquet files from the hub (its own, else the hub's parquet conversion)."""
    # Only the split's shards when one is named (fnmatch's * crosses folders: data/train-0.parquet and
    # default/train/0000.parquet both match): a corpus's other splits can be many gigabytes.
    patterns = [f"*{split}*.parquet"] if split else ["*.parquet"]
    try:
        from huggingface_hub import snapshot_download

        folder = Path(snapshot_download(repo_id, repo_type="dataset", allow_patterns=patterns))
        if not shard_files(folder, split):
            folder = Path(
                snapshot_download(
                    repo_id, repo_type="dataset", revision="refs/convert/parquet", allow_patterns=patterns
                )
            )
    except Exception as exc:  # network, auth, unknown id: all are the user's to fix
        raise OSError(
            f"{repo_id}: not a local path, and the Hugging Face hub did not give it as a dataset "
            f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})"
        ) from None
    return folder


def _pick(names: list[str], flag: str | None, candidates, what: str, option: str, source) -> str | None:
    if flag is not None:
        if flag not in names:
            raise ValueError(f"{source}: no column {flag!r} for {option} (columns: {', '.join(names)})")
        return flag
    lower = {n.lower(): n for n in names}
    return next((lower[c] for c in candidates if c in lower), None)


def _batches(shard: Path, columns: list[str]):
    pa = _pyarrow()
    if shard.suffix == ".parquet":
        yield from pa.parquet.ParquetFile(str(shard)).iter_batches(batch_size=BATCH_ROWS, columns=columns)
        return
    with pa.memory_map(str(shard)) as src:  # save_to_disk writes Arrow streams; mapped, not read
        try:
            reader = pa.ipc.open_stream(src)
        except pa.ArrowInvalid:
            src.seek(0)
            reader = pa.ipc.open_file(src)
            for i in range(reader.num_record_batches):
                yield reader.get_batch(i).select(columns)
            return
        for batch in reader:
            yield batch.select(columns)


def _schema(shard: Path):
    pa = _pyarrow()
    if shard.suffix == ".parquet":
        return pa.parquet.read_schema(str(shard))
    with pa.memory_map(str(shard)) as src:
        try:
            return pa.ipc.open_stream(src).schema
        except pa.ArrowInvalid:
            src.seek(0)
            return pa.ipc.open_file(src).schema


def _columns(shard: Path, options) -> tuple[str, str, str | None]:
    names = list(_schema(shard).names)
    audio = _pick(names, options.audio_column, AUDIO_COLUMNS, "audio", "--audio_column", shard)
    text = _pick(names, options.text_column, TEXT_COLUMNS, "text", "--text_column", shard)
    speaker = _pick(names, options.speaker_column, SPEAKER_COLUMNS, "speaker", "--speaker_column", shard)
    if audio is None:
        raise ValueError(f"{shard}: no audio column found (columns: {', '.join(names)}); name it with --audio_column")
    if text is None:
        raise ValueError(
            f"{shard}: no transcript column found (columns: {', '.join(names)}); name it with --text_column"
        )
    if speaker is None and options.speaker is None:
        raise ValueError(
            f"{shard}: no speaker column found (columns: {', '.join(names)}); name it with "
            "--speaker_column, or pass --speaker NAME if one person speaks every clip"
        )
    return audio, text, speaker


def rows(source: Path, options, report, label: str | None = None):
    shards = shard_files(source, options.split)
    if not shards:
        where = f" of split {options.split!r}" if options.split else ""
        raise FileNotFoundError(f"{label or source}: no parquet or arrow shards{where}")
    columns = [_columns(shard, options) for shard in shards]  # every shard's columns checked before any is read
    return label or str(source), _rows(shards, columns, options, report)


_MAGIC = (
    (b"RIFF", ".wav"),
    (b"fLaC", ".flac"),
    (b"OggS", ".ogg"),
    (b"ID3", ".mp3"),
    (b"\xff\xfb", ".mp3"),
    (b"\xff\xf3", ".mp3"),
    (b"\xff\xf2", ".mp3"),
)


def _suffix(head: bytes, name: str | None) -> str:
    for magic, suffix in _MAGIC:
        if head.startswith(magic):
            return suffix
    suffix = Path(name or "").suffix.lower()
    return suffix if suffix in (".wav", ".flac", ".ogg", ".mp3", ".opus") else ".bin"


def _rows(shards, columns, options, report):
    from ..clips import ClipRow
    from . import write_once

    pa = _pyarrow()
    out = options.clips_dir / "hf"
    for shard, (audio_col, text_col, speaker_col) in zip(shards, columns):
        wanted = [audio_col, text_col] + ([speaker_col] if speaker_col else [])
        row_index = 0
        for batch in _batches(shard, wanted):
            audio = batch.column(audio_col)
            if pa.types.is_struct(audio.type):
                names = [audio.type.field(i).name for i in range(audio.type.num_fields)]
                data = audio.field("bytes") if "bytes" in names else None
                paths = audio.field("path") if "path" in names else None
            elif pa.types.is_binary(audio.type) or pa.types.is_large_binary(audio.type):
                data, paths = audio, None
            else:
                data, paths = None, audio
            if data is None and paths is None:
                raise ValueError(f"{shard}: column {audio_col!r} holds {audio.type}, not audio {{bytes, path}}")
            texts = batch.column(text_col).to_pylist()
            speakers = batch.column(speaker_col).to_pylist() if speaker_col else [options.speaker] * len(texts)
            for i in range(batch.num_rows):
                where = f"{shard.name} row {row_index}"
                row_index += 1
                speaker, text = speakers[i], texts[i]
                if speaker is None or str(speaker) == "":
                    report.drop(shard, where, "no_speaker", "empty speaker")
                    continue
                speaker = str(speaker)
                report.count_read(speaker)
                name = paths[i].as_py() if paths is not None else None
                if not isinstance(text, str) or not text.strip():
                    report.drop(shard, where, "empty_text", f"{name or where}: empty transcript", speaker)
                    continue
                blob = data[i] if data is not None else None
                if blob is not None and blob.is_valid:
                    buf = blob.as_buffer()  # a view of the batch's memory: the clip is not copied
                    digest = hashlib.sha256(memoryview(buf)).hexdigest()
                    clip = out / digest[:2] / f"{digest}{_suffix(bytes(memoryview(buf)[:4]), name)}"
                    write_once(clip, lambda f, buf=buf: f.write(memoryview(buf)))
                elif name:
                    clip = Path(name) if Path(name).is_absolute() else shard.parent / name
                else:
                    report.drop(shard, where, "audio_not_found", "no audio bytes nor path", speaker)
                    continue
                yield ClipRow(name or where, str(clip), text.strip(), speaker, where)
