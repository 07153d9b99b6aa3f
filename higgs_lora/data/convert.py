"""Convert what users have into the canonical five-message JSONL: other sample layouts, flat records, and
folders of clips with a `metadata.csv` (paired into reference/target samples within each speaker).

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
from .audio_check import is_remote
from .formats import component_errors, extract, iter_records, resolve_audio

METADATA = "metadata.csv"
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3")


@dataclass
class Dropped:
    source: str
    item: str  # sample index or clip name
    reason: str
    message: str


@dataclass
class ConvertReport:
    output: str
    converted: int = 0
    per_source: dict = field(default_factory=dict)
    dropped: list[Dropped] = field(default_factory=list)

    def summary(self, limit: int = 10) -> str:
        lines = [f"{self.output}: {self.converted} samples written"]
        lines += [f"  from {src}: {n}" for src, n in self.per_source.items()]
        if self.dropped:
            counts = Counter(d.reason for d in self.dropped)
            lines.append(f"dropped {len(self.dropped)}: " + ", ".join(f"{r}: {n}" for r, n in sorted(counts.items())))
            lines += [f"  {d.source} [{d.item}]: [{d.reason}] {d.message}" for d in self.dropped[:limit]]
            if len(self.dropped) > limit:
                lines.append(f"  ... and {len(self.dropped) - limit} more (--report R.json lists them all)")
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return {"output": self.output, "converted": self.converted, "per_source": self.per_source,
                "dropped": [d.__dict__ for d in self.dropped]}


def canonical_record(ref_text: str, ref_audio: str, target_text: str, target_audio: str, system_prompt: str,
                     speaker=None, sample_id=None) -> dict:
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
            report.dropped.append(Dropped(str(path), str(index), code, "; ".join(m for _, m in errors)))
            continue
        prompt = c.system_prompt if isinstance(c.system_prompt, str) else system_prompt
        yield canonical_record(
            c.ref_text, _portable(resolve_audio(c.ref_audio, path.parent), out_dir), c.target_text,
            _portable(resolve_audio(c.target_audio, path.parent), out_dir), prompt,
            speaker=c.speaker, sample_id=record.get("id", record.get("sample_id")))


# ---------------------------------------------------------------- folders of clips

@dataclass(frozen=True)
class Clip:
    key: str  # the name in metadata.csv
    path: str
    text: str
    speaker: str
    seconds: float


def _find_audio(folder: Path, name: str) -> Path | None:
    candidates = [folder / name]
    if not Path(name).suffix:
        candidates += [folder / sub / f"{name}{ext}" for sub in ("wavs", ".") for ext in AUDIO_SUFFIXES]
    return next((c for c in candidates if c.is_file()), None)


def read_metadata(source: Path, speaker: str | None, report: ConvertReport) -> list[Clip]:
    """Clips of a folder's metadata.csv: `audio|text|speaker` rows, or LJSpeech `id|text[|normalized text]`
    rows with a fixed `speaker`. Clips that are missing or unreadable are dropped and reported."""
    import soundfile as sf

    csv_path = source / METADATA if source.is_dir() else source
    folder = csv_path.parent
    if not csv_path.is_file():
        raise FileNotFoundError(f"{source}: no {METADATA} (expected rows audio|text|speaker, or id|text with --speaker)")
    try:
        with open(csv_path, encoding="utf-8-sig", newline="") as f:
            rows = list(csv.reader(f, delimiter="|", quoting=csv.QUOTE_NONE))
    except UnicodeDecodeError as err:
        raise ValueError(f"{csv_path}: not UTF-8 text ({err.reason} at byte {err.start}); save it as UTF-8") from None
    except csv.Error as err:  # e.g. a field over csv's size limit: not a ValueError, would show a traceback
        raise ValueError(f"{csv_path}: not a |-separated metadata file ({err})") from None
    clips = []
    for lineno, row in enumerate(rows, 1):
        row = [cell.strip() for cell in row]
        if not any(row):
            continue
        if lineno == 1 and [c.lower() for c in row[:2]] in (["audio", "text"], ["id", "text"]):
            continue  # header
        where = f"line {lineno}"
        if speaker is not None:
            if len(row) < 2:
                report.dropped.append(Dropped(str(csv_path), where, "no_target_text", "expected id|text"))
                continue
            # LJSpeech's third column is the transcript with numbers spelled out: what is spoken.
            text = row[2] if len(row) > 2 and row[2] else row[1]
            name, spk = row[0], speaker
        else:
            if len(row) < 3:
                raise ValueError(f"{csv_path} {where}: expected audio|text|speaker; for id|text rows "
                                 "(LJSpeech style) give the speaker with --speaker")
            name, text, spk = row[0], row[1], row[2]
            if not Path(name).suffix:
                raise ValueError(f"{csv_path} {where}: {name!r} is not an audio file name; for LJSpeech-style "
                                 "id|text[|normalized text] rows give the speaker with --speaker")
        if not text:
            report.dropped.append(Dropped(str(csv_path), where, "empty_text", f"{name}: empty transcript"))
            continue
        audio = _find_audio(folder, name)
        if audio is None:
            report.dropped.append(Dropped(str(csv_path), where, "audio_not_found", f"{name}: no such audio in {folder}"))
            continue
        try:
            info = sf.info(str(audio))
            seconds = info.frames / float(info.samplerate)
        except Exception as exc:
            report.dropped.append(Dropped(str(csv_path), where, "audio_unreadable", f"{audio}: {exc}"))
            continue
        clips.append(Clip(name, str(audio), text, spk, seconds))
    return clips


def pair_clips(clips: list[Clip], refs_per_target: int = 1, seed: int = 0, ref_min_seconds: float | None = None,
               ref_max_seconds: float | None = None, report: ConvertReport | None = None, source: str = ""):
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
        refs = [c for c in group if (ref_min_seconds is None or c.seconds >= ref_min_seconds)
                and (ref_max_seconds is None or c.seconds <= ref_max_seconds)]
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
                    window = "" if ref_min_seconds is None and ref_max_seconds is None else \
                        f" within {ref_min_seconds or 0:g}-{ref_max_seconds or float('inf'):g} s"
                    report.dropped.append(Dropped(source, target.key, "no_reference_candidate",
                                                  f"speaker {spk!r} has no other clip{window} to use as reference"))
                continue
            for ref in rng.sample(candidates, min(refs_per_target, len(candidates))):
                pairs.append((ref, target))
    return pairs


def records_from_folder(source: Path, out_dir: Path, system_prompt: str, report: ConvertReport, *, speaker=None,
                        refs_per_target=1, seed=0, ref_min_seconds=None, ref_max_seconds=None):
    clips = read_metadata(source, speaker, report)
    for ref, target in pair_clips(clips, refs_per_target, seed, ref_min_seconds, ref_max_seconds, report, str(source)):
        yield canonical_record(ref.text, _portable(ref.path, out_dir), target.text, _portable(target.path, out_dir),
                               system_prompt, speaker=target.speaker)


# ---------------------------------------------------------------- the command

def convert(inputs, output, *, system_prompt: str = DEFAULT_SYSTEM_PROMPT, speaker: str | None = None,
            refs_per_target: int = 1, seed: int = 0, ref_min_seconds: float | None = None,
            ref_max_seconds: float | None = None, overwrite: bool = False) -> ConvertReport:
    """Write every input's samples to `output` (JSONL, canonical five messages); the report says what was dropped."""
    output = Path(output)
    if output.exists() and not overwrite:
        raise FileExistsError(f"{output} exists; pass --overwrite to replace it")
    sources = [Path(p) for p in inputs]
    for src in sources:
        if not src.exists():
            raise FileNotFoundError(f"{src}: no such file or folder")
        if src.resolve() == output.resolve():
            raise ValueError(f"{output} is also an input; write to another file")
    out_dir = output.parent if str(output.parent) else Path(".")
    out_dir.mkdir(parents=True, exist_ok=True)
    report = ConvertReport(str(output))
    fd, tmp = tempfile.mkstemp(prefix=f".{output.name}.", suffix=".tmp", dir=out_dir)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            for src in sources:
                if src.is_dir() or src.name == METADATA or src.suffix.lower() == ".csv":
                    records = records_from_folder(src, out_dir, system_prompt, report, speaker=speaker,
                                                  refs_per_target=refs_per_target, seed=seed,
                                                  ref_min_seconds=ref_min_seconds, ref_max_seconds=ref_max_seconds)
                else:
                    records = records_from_json(src, out_dir, system_prompt, report)
                n = 0
                for record in records:
                    f.write(json.dumps(record, ensure_ascii=False) + "\n")
                    n += 1
                report.per_source[str(src)] = n
                report.converted += n
        if report.converted == 0:
            raise ValueError(f"nothing to write: every input sample was dropped\n{report.summary()}")
        os.replace(tmp, output)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return report
