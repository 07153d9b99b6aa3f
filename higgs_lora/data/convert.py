"""Convert what users have into the canonical five-message JSONL: other sample layouts, flat records, and
corpora of clips (a folder with `metadata.csv`, a Common Voice release, a Kaldi data dir, a Hugging Face
dataset: see `corpora/`), paired into reference/target samples within each speaker.

Every corpus goes through the same path: its reader yields `ClipRow`s (dropping what it can tell is
unusable), `probe_clips` reads each clip's duration from its header (never its audio) and applies the
duration window, `pair_clips` pairs within each speaker, and `convert` writes the records.

The output is written to a temporary file next to OUT and renamed at the end, so a failure never
leaves a partial OUT (nor touches an existing one unless asked to replace it).
"""

from __future__ import annotations

import csv
import json
import os
import random
import tempfile
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from ..defaults import DEFAULT_SYSTEM_PROMPT
from .audio_check import MAX_SECONDS, MIN_SECONDS, is_remote
from .data_file import iter_records
from .formats import component_errors, extract, resolve_audio

METADATA = "metadata.csv"
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3")


@dataclass
class Dropped:
    source: str
    item: str  # sample index or clip name
    reason: str
    message: str
    speaker: str | None = None


@dataclass
class ConvertReport:
    output: str
    converted: int = 0
    per_source: dict = field(default_factory=dict)
    dropped: list[Dropped] = field(default_factory=list)
    read: int = 0  # clips read from corpora (rows of their tables)
    # speaker -> {"read", "written", "dropped": {reason: n}}; corpora only (JSON samples have no clips to count)
    per_speaker: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # one line per thing refused as a whole (e.g. a pipe command)

    def _speaker(self, speaker) -> dict:
        return self.per_speaker.setdefault(str(speaker), {"read": 0, "written": 0, "dropped": {}})

    def count_read(self, speaker) -> None:
        self.read += 1
        self._speaker(speaker)["read"] += 1

    def count_written(self, speaker) -> None:
        if speaker is not None and str(speaker) in self.per_speaker:
            self._speaker(speaker)["written"] += 1

    def drop(self, source, item, reason: str, message: str, speaker=None) -> None:
        speaker = None if speaker is None else str(speaker)
        self.dropped.append(Dropped(str(source), str(item), reason, message, speaker))
        if speaker is not None:
            counts = self._speaker(speaker)["dropped"]
            counts[reason] = counts.get(reason, 0) + 1

    def unusable_speakers(self) -> list[str]:
        """Speakers that were read but gave no sample (one clip, or every clip dropped)."""
        return sorted(s for s, c in self.per_speaker.items() if c["read"] and not c["written"])

    def summary(self, limit: int = 10) -> str:
        lines = [f"{self.output}: {self.converted} samples written"]
        lines += [f"  from {src}: {n}" for src, n in self.per_source.items()]
        if self.read:
            unusable = self.unusable_speakers()
            lines.append(
                f"read {self.read} clips of {len(self.per_speaker)} speakers; "
                f"{len(self.per_speaker) - len(unusable)} speakers gave samples, {len(unusable)} unusable"
                + (f" ({', '.join(unusable[:limit])}{' ...' if len(unusable) > limit else ''})" if unusable else "")
            )
        lines += self.notes
        if self.dropped:
            counts = Counter(d.reason for d in self.dropped)
            lines.append(f"dropped {len(self.dropped)}: " + ", ".join(f"{r}: {n}" for r, n in sorted(counts.items())))
            lines += [f"  {d.source} [{d.item}]: [{d.reason}] {d.message}" for d in self.dropped[:limit]]
            if len(self.dropped) > limit:
                lines.append(f"  ... and {len(self.dropped) - limit} more (--report R.json lists them all)")
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return {
            "output": self.output,
            "converted": self.converted,
            "per_source": self.per_source,
            "read": self.read,
            "per_speaker": self.per_speaker,
            "unusable_speakers": self.unusable_speakers(),
            "notes": self.notes,
            "dropped": [d.__dict__ for d in self.dropped],
        }


def canonical_record(
    ref_text: str, ref_audio: str, target_text: str, target_audio: str, system_prompt: str, speaker=None, sample_id=None
) -> dict:
    """The five-message form every reader of this project accepts (no system turn when the prompt is empty)."""
    messages = [{"role": "system", "content": system_prompt}] if system_prompt else []
    messages += [
        {"role": "user", "content": ref_text},
        {"role": "assistant", "content": {"type": "audio", "audio_url": ref_audio}},
        {"role": "user", "content": target_text},
        {"role": "assistant", "content": {"type": "audio", "audio_url": target_audio}},
    ]
    record = {"messages": messages}
    if speaker is not None:
        record["speaker"] = str(speaker)
    if sample_id is not None:
        record["id"] = str(sample_id)
    return record


def _portable(path: str, out_dir: Path) -> str:
    """Audio paths relative to the output file, so the data folder can move as a whole."""
    if is_remote(path):
        return path
    try:
        return os.path.relpath(os.path.abspath(path), os.path.abspath(out_dir))
    except ValueError:  # another drive on Windows
        return os.path.abspath(path)


# ---------------------------------------------------------------- JSON / JSONL sources


def records_from_json(path: Path, out_dir: Path, system_prompt: str, report: ConvertReport):
    for index, record in enumerate(iter_records(path)):
        c = extract(record)
        errors = component_errors(c, require_target=True)
        if errors:
            code = errors[0][0]
            report.drop(path, index, code, "; ".join(m for _, m in errors))
            continue
        prompt = c.system_prompt if isinstance(c.system_prompt, str) else system_prompt
        yield canonical_record(
            c.ref_text,
            _portable(resolve_audio(c.ref_audio, path.parent), out_dir),
            c.target_text,
            _portable(resolve_audio(c.target_audio, path.parent), out_dir),
            prompt,
            speaker=c.speaker,
            sample_id=record.get("id", record.get("sample_id")),
        )


# ---------------------------------------------------------------- corpora of clips


@dataclass(frozen=True)
class Clip:
    key: str  # how the corpus names the clip (metadata.csv's name, Common Voice's path, a Kaldi utterance id)
    path: str
    text: str
    speaker: str
    seconds: float


@dataclass(frozen=True)
class ClipRow:
    """One clip as a corpus reader found it, before its duration is known (`seconds` when the reader knows it)."""

    key: str
    path: str
    text: str
    speaker: str
    where: str  # for the report: "line 12", "validated.tsv line 40", "data/train-0.parquet row 7"
    seconds: float | None = None


@dataclass(frozen=True)
class DurationWindow:
    """Clips outside it are dropped before pairing (the defaults are validate's, so what is written validates)."""

    min_seconds: float = MIN_SECONDS
    max_seconds: float = MAX_SECONDS

    def reason(self, seconds: float) -> tuple[str, str] | None:
        if seconds < self.min_seconds:
            return "audio_too_short", f"{seconds:.3f} s, shorter than {self.min_seconds:g} s"
        if seconds > self.max_seconds:
            return "audio_too_long", f"{seconds:.1f} s, longer than {self.max_seconds:g} s"
        return None


def probe_clips(
    rows, source: str, report: ConvertReport, window: DurationWindow = DurationWindow(), progress: bool = True
) -> list[Clip]:
    """The rows' clips with their durations, read from each file's header (the audio is never loaded, so
    100k rows take the memory of 100k short records). Missing, undecodable and out-of-window clips are
    dropped and reported."""
    import soundfile as sf
    from tqdm import tqdm

    clips = []
    for row in tqdm(
        rows,
        desc=f"reading {Path(source).name or source}",
        unit=" clips",
        disable=None if progress else True,
        mininterval=1.0,
    ):
        seconds = row.seconds
        if seconds is None:
            if not Path(row.path).is_file():
                report.drop(
                    source, row.where, "audio_not_found", f"{row.key}: no such audio file {row.path}", row.speaker
                )
                continue
            try:
                with sf.SoundFile(row.path) as f:  # the header only; sf.info also formats strings, a third slower
                    seconds = f.frames / float(f.samplerate)
            except Exception as exc:
                report.drop(
                    source, row.where, "audio_unreadable", f"{row.path}: not decodable audio ({exc})", row.speaker
                )
                continue
        out = window.reason(seconds)
        if out is not None:
            report.drop(source, row.where, out[0], f"{row.key}: {out[1]}", row.speaker)
            continue
        clips.append(Clip(row.key, row.path, row.text, row.speaker, seconds))
    return clips


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


def read_metadata(
    source: Path, speaker: str | None, report: ConvertReport, window: DurationWindow = DurationWindow()
) -> list[Clip]:
    csv_path = source / METADATA if source.is_dir() else source
    return probe_clips(metadata_rows(source, speaker, report), str(csv_path), report, window)


def pair_clips(
    clips: list[Clip],
    refs_per_target: int = 1,
    seed: int = 0,
    ref_min_seconds: float | None = None,
    ref_max_seconds: float | None = None,
    report: ConvertReport | None = None,
    source: str = "",
):
    """(reference, target) pairs within each speaker: every clip is a target once, with up to
    `refs_per_target` different references drawn from the speaker's other clips (never itself),
    optionally only references whose duration lies in the window. Same seed, same pairs."""
    if refs_per_target < 1:
        raise ValueError(f"--refs_per_target must be at least 1, got {refs_per_target}")
    by_speaker: dict[str, list[Clip]] = defaultdict(list)
    for clip in clips:
        by_speaker[clip.speaker].append(clip)
    rng = random.Random(seed)
    pairs = []
    for spk in sorted(by_speaker):
        group = by_speaker[spk]
        refs = [
            c
            for c in group
            if (ref_min_seconds is None or c.seconds >= ref_min_seconds)
            and (ref_max_seconds is None or c.seconds <= ref_max_seconds)
        ]
        # Where each file sits among the references, found once: comparing every target with every
        # reference took minutes for a 10,000-clip speaker. `candidates` keeps the references' order,
        # so the draw (and the pairs a seed gives) is unchanged.
        positions: dict[str, list[int]] = defaultdict(list)
        for i, ref in enumerate(refs):
            positions[os.path.abspath(ref.path)].append(i)
        for target in group:
            candidates, start = [], 0
            for i in positions.get(os.path.abspath(target.path), ()):
                candidates += refs[start:i]
                start = i + 1
            candidates += refs[start:]
            if not candidates:
                if report is not None:
                    if len(group) == 1:
                        report.drop(
                            source,
                            target.key,
                            "single_clip_speaker",
                            f"speaker {spk!r} has only this clip: no other clip to use as reference "
                            "(the speaker is unusable)",
                            spk,
                        )
                    else:
                        window = (
                            ""
                            if ref_min_seconds is None and ref_max_seconds is None
                            else f" within {ref_min_seconds or 0:g}-{ref_max_seconds or float('inf'):g} s"
                        )
                        report.drop(
                            source,
                            target.key,
                            "no_reference_candidate",
                            f"speaker {spk!r} has no other clip{window} to use as reference",
                            spk,
                        )
                continue
            for ref in rng.sample(candidates, min(refs_per_target, len(candidates))):
                pairs.append((ref, target))
    return pairs


@dataclass(frozen=True)
class Pairing:
    refs_per_target: int = 1
    seed: int = 0
    ref_min_seconds: float | None = None
    ref_max_seconds: float | None = None


def records_from_clips(
    clips: list[Clip],
    source: str,
    out_dir: Path,
    system_prompt: str,
    report: ConvertReport,
    pairing: Pairing = Pairing(),
):
    """Canonical records of a corpus's clips, paired within each speaker."""
    for ref, target in pair_clips(
        clips, pairing.refs_per_target, pairing.seed, pairing.ref_min_seconds, pairing.ref_max_seconds, report, source
    ):
        yield canonical_record(
            ref.text,
            _portable(ref.path, out_dir),
            target.text,
            _portable(target.path, out_dir),
            system_prompt,
            speaker=target.speaker,
        )


def records_from_folder(
    source: Path,
    out_dir: Path,
    system_prompt: str,
    report: ConvertReport,
    *,
    speaker=None,
    refs_per_target=1,
    seed=0,
    ref_min_seconds=None,
    ref_max_seconds=None,
    window: DurationWindow = DurationWindow(),
):
    clips = read_metadata(source, speaker, report, window)
    yield from records_from_clips(
        clips,
        str(source),
        out_dir,
        system_prompt,
        report,
        Pairing(refs_per_target, seed, ref_min_seconds, ref_max_seconds),
    )


# ---------------------------------------------------------------- the command


def convert(
    inputs,
    output,
    *,
    system_prompt: str = DEFAULT_SYSTEM_PROMPT,
    speaker: str | None = None,
    refs_per_target: int = 1,
    seed: int = 0,
    ref_min_seconds: float | None = None,
    ref_max_seconds: float | None = None,
    overwrite: bool = False,
    format: str = "auto",
    split: str | None = None,
    text_column: str | None = None,
    speaker_column: str | None = None,
    audio_column: str | None = None,
    min_seconds: float = MIN_SECONDS,
    max_seconds: float = MAX_SECONDS,
) -> ConvertReport:
    """Write every input's samples to `output` (JSONL, canonical five messages); the report says what was dropped.

    `format` names the inputs' layout ("auto": found from what each holds, see corpora.detect)."""
    from . import corpora

    output = Path(output)
    if output.exists() and not overwrite:
        raise FileExistsError(f"{output} exists; pass --overwrite to replace it")
    if refs_per_target < 1:  # before any corpus is read (a Hugging Face one writes its clips)
        raise ValueError(f"--refs_per_target must be at least 1, got {refs_per_target}")
    out_dir = output.parent if str(output.parent) else Path(".")
    sources = []
    for name in inputs:
        src = Path(name)
        if src.exists() and src.resolve() == output.resolve():
            raise ValueError(f"{output} is also an input; write to another file")
        sources.append((str(name), corpora.detect(str(name), format)))
    out_dir.mkdir(parents=True, exist_ok=True)
    report = ConvertReport(str(output))
    options = corpora.Options(
        split=split,
        text_column=text_column,
        speaker_column=speaker_column,
        audio_column=audio_column,
        speaker=speaker,
        clips_dir=out_dir / corpora.CLIPS_DIR,
        window=DurationWindow(min_seconds, max_seconds),
    )
    pairing = Pairing(refs_per_target, seed, ref_min_seconds, ref_max_seconds)
    fd, tmp = tempfile.mkstemp(prefix=f".{output.name}.", suffix=".tmp", dir=out_dir)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            for name, kind in sources:
                if kind == "json":
                    records = records_from_json(Path(name), out_dir, system_prompt, report)
                else:
                    source, rows = corpora.rows(kind, name, options, report)
                    clips = probe_clips(rows, source, report, options.window)
                    records = records_from_clips(clips, source, out_dir, system_prompt, report, pairing)
                n = 0
                for record in records:
                    f.write(json.dumps(record, ensure_ascii=False) + "\n")
                    report.count_written(record.get("speaker"))
                    n += 1
                report.per_source[name] = n
                report.converted += n
        if report.converted == 0:
            raise ValueError(f"nothing to write: every input sample was dropped\n{report.summary()}")
        os.replace(tmp, output)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return report
