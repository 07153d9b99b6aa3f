"""A Kaldi data dir: `wav.scp`, `text`, `utt2spk` (or `spk2utt`), and `segments` when utterances are cut
from longer recordings.

A segment is read by seeking to its first frame and reading only its frames (a two-hour broadcast is
never decoded whole, once per segment or at all), and written as a WAV clip under the clips folder next
to the output, in the recording's sample format where WAV holds it. Pipe entries of `wav.scp`
(`sph2pipe -f wav x.sph |`) are refused, never run: convert does not execute commands found in data.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter, defaultdict
from pathlib import Path


def is_data_dir(folder: Path) -> bool:
    return (folder / "wav.scp").is_file() and (folder / "text").is_file()


def _table(path: Path) -> dict[str, str]:
    """`key rest-of-line` lines (Kaldi's tables; the rest keeps its inner spaces)."""
    table = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            parts = line.strip().split(maxsplit=1)
            if parts:
                table[parts[0]] = parts[1].strip() if len(parts) > 1 else ""
    return table


def _speakers(folder: Path, options) -> dict[str, str] | None:
    if (folder / "utt2spk").is_file():
        return _table(folder / "utt2spk")
    if (folder / "spk2utt").is_file():
        return {utt: spk for spk, utts in _table(folder / "spk2utt").items() for utt in utts.split()}
    if options.speaker is not None:
        return None
    raise FileNotFoundError(
        f"{folder}: no utt2spk nor spk2utt (who speaks each utterance); "
        "pass --speaker NAME if one person speaks them all"
    )


def _resolve(entry: str, folder: Path) -> Path:
    # Kaldi recipes write paths relative to the recipe root, which is usually two levels above data/x.
    p = Path(entry).expanduser()
    if p.is_absolute():
        return p
    for base in (folder, Path.cwd(), *folder.resolve().parents[:2]):
        if (base / p).is_file():
            return base / p
    return folder / p


def rows(folder: Path, options, report):
    wav_scp = _table(folder / "wav.scp")
    texts = _table(folder / "text")
    speakers = _speakers(folder, options)
    segments = None
    if (folder / "segments").is_file():
        segments = {}
        for utt, rest in _table(folder / "segments").items():
            parts = rest.split()
            try:
                segments[utt] = (parts[0], float(parts[1]), float(parts[2]))
            except (IndexError, ValueError):
                raise ValueError(f"{folder / 'segments'}: line for {utt!r} is not 'utt recording start end'") from None
    pipes = {rec: cmd for rec, cmd in wav_scp.items() if cmd.endswith("|")}
    if pipes:
        by_program = Counter(cmd.split()[0] for cmd in pipes.values())
        examples = {}
        for cmd in pipes.values():
            examples.setdefault(cmd.split()[0], cmd)
        for program, n in sorted(by_program.items()):
            report.notes.append(
                f"{folder / 'wav.scp'}: {n} recording(s) are pipe commands, refused (not run): "
                f"{examples[program]!r}; write their audio to files and list the files instead"
            )
    return str(folder), _rows(folder, wav_scp, texts, speakers, segments, pipes, options, report)


def _rows(folder, wav_scp, texts, speakers, segments, pipes, options, report):
    from ..clips import ClipRow

    source = str(folder)
    by_recording: dict[str, list] = defaultdict(list)
    for utt, text in texts.items():
        speaker = options.speaker if speakers is None else speakers.get(utt)
        where = f"utterance {utt}"
        if speaker is None:
            report.drop(source, where, "no_speaker", f"{utt}: not in utt2spk")
            continue
        report.count_read(speaker)
        if not text.strip():
            report.drop(source, where, "empty_text", f"{utt}: empty transcript", speaker)
            continue
        rec, start, end = segments[utt] if segments is not None and utt in segments else (utt, None, None)
        if segments is not None and utt not in segments:
            report.drop(source, where, "no_segment", f"{utt}: not in segments", speaker)
            continue
        if rec not in wav_scp:
            report.drop(source, where, "audio_not_found", f"{utt}: recording {rec!r} is not in wav.scp", speaker)
            continue
        if rec in pipes:
            report.drop(source, where, "pipe_command", f"{utt}: recording {rec!r} is a pipe command (not run)", speaker)
            continue
        path = _resolve(wav_scp[rec], folder)
        if start is None:
            yield ClipRow(utt, str(path), text.strip(), speaker, where)
        else:
            by_recording[rec].append((utt, start, end, text.strip(), speaker, where))
    for rec, utts in by_recording.items():
        yield from _cut(_resolve(wav_scp[rec], folder), utts, source, options, report)


def _cut(path: Path, utts, source, options, report):
    import soundfile as sf

    from ..clips import ClipRow
    from . import write_once

    if not path.is_file():
        for utt, _, _, _, speaker, where in utts:
            report.drop(source, where, "audio_not_found", f"{utt}: no such recording {path}", speaker)
        return
    try:
        f = sf.SoundFile(str(path))
    except Exception as exc:
        for utt, _, _, _, speaker, where in utts:
            report.drop(source, where, "audio_unreadable", f"{utt}: {path}: {exc}", speaker)
        return
    stat = path.stat()
    subtype = f.subtype if sf.check_format("WAV", f.subtype) else "PCM_16"
    with f:
        rate, total = f.samplerate, f.frames
        for utt, start, end, text, speaker, where in sorted(utts, key=lambda u: u[1]):
            first = max(0, round(start * rate))
            last = total if end is None or end < 0 else min(total, round(end * rate))  # end -1: to the end
            if last <= first:
                report.drop(
                    source,
                    where,
                    "segment_outside_recording",
                    f"{utt}: {start:g}-{end:g} s is not inside {path} ({total / rate:.2f} s)",
                    speaker,
                )
                continue
            seconds = (last - first) / rate
            out = options.window.reason(seconds)
            if out is not None:  # before cutting: a too-long segment is never written
                report.drop(source, where, out[0], f"{utt}: {out[1]}", speaker)
                continue
            # Named by the recording (path, size, mtime) and the frames: a second convert re-uses the clip.
            key = hashlib.sha1(
                f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}|{first}|{last}".encode()
            ).hexdigest()
            clip = options.clips_dir / "kaldi" / f"{re.sub(r'[^A-Za-z0-9_.-]', '_', utt)[:80]}-{key[:16]}.wav"

            def write(out_file, first=first, last=last):
                f.seek(first)
                frames = f.read(last - first, dtype="float32", always_2d=True)
                sf.write(out_file, frames, rate, format="WAV", subtype=subtype)

            try:
                write_once(clip, write)
            except Exception as exc:
                if isinstance(exc, OSError) and not isinstance(exc, sf.LibsndfileError):
                    raise  # the output disk, not the recording: stop
                report.drop(source, where, "audio_unreadable", f"{utt}: {path} at {start:g} s: {exc}", speaker)
                continue
            yield ClipRow(utt, str(clip), text, speaker, where, seconds)
