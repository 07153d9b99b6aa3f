"""Convert what users have into the canonical five-message JSONL: other sample layouts, flat records, and
corpora of clips (a folder with `metadata.csv`, a Common Voice release, a Kaldi data dir, a Hugging Face
dataset: see `corpora/`), paired into reference/target samples within each speaker.

Every corpus goes through the same path (`clips`): its reader yields `ClipRow`s (dropping what it can tell
is unusable), `probe_clips` reads each clip's duration from its header (never its audio) and applies the
duration window, `pair_clips` pairs within each speaker, and `convert` writes the records; `convert_report`
counts what was written and dropped.

The output is written to a temporary file next to OUT and renamed at the end, so a failure never
leaves a partial OUT (nor touches an existing one unless asked to replace it).
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from ..defaults import DEFAULT_SYSTEM_PROMPT
from .audio_check import MAX_SECONDS, MIN_SECONDS, is_remote
from .clips import Clip, DurationWindow, Pairing, pair_clips, probe_clips
from .convert_report import ConvertReport
from .data_file import iter_records
from .formats import component_errors, extract, resolve_audio


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
