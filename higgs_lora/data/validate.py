"""Sample validation: every sample is valid or listed with its index, id and one or more reason codes.

Each unique audio file is checked once (decoded to the end, not only its header), in worker
processes when asked, so 10,000 samples sharing a few clips cost a few decodes.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from ..constants import CLIP_SILENCE_DBFS
from ..defaults import DEFAULT_SYSTEM_PROMPT
from .audio_check import MAX_SECONDS, MIN_SECONDS, AudioInfo, AudioLimits, check_many, is_remote
from .data_file import iter_records
from .formats import FOR_INFERENCE_HINT, component_errors, extract, record_id, resolve_audio, to_sample
from .text import MAX_CHARS_PER_SECOND, MIN_CHARS_PER_SECOND, TextNormalizer, implausible_speaking_rate

# The fixed, documented set of reasons a sample is invalid (README: "Reason codes").
CODES = {
    "not_an_object": "the sample is not a JSON object",
    "no_messages": 'no "messages" list (nor flat ref_/target_ fields)',
    "unknown_role": "a message without a system/user/assistant role, or roles in an order no layout allows",
    "no_reference_text": "no user message (or field) with the reference transcript",
    "no_reference_audio": "no assistant message (or field) with the reference audio",
    "no_target_text": "no user message (or field) with the target text",
    "no_target_audio": "no target audio (training needs the recording of the target text)",
    "empty_text": "a transcript that is empty or only whitespace (after text normalisation)",
    "audio_not_found": "an audio path that is not a file",
    "audio_unreadable": "an audio file that does not decode to the end (or decodes to NaN/inf)",
    "audio_too_short": "a clip shorter than --min_duration",
    "audio_too_long": "a clip longer than --max_duration",
    "audio_silent": f"a clip whose RMS level is below the silence threshold ({CLIP_SILENCE_DBFS:g} dBFS by default)",
    "remote_audio": "an http(s) URL, refused unless --allow_remote_audio",
}


def _label(index: int, sample_id: str | None) -> str:
    return f"sample {index}" + (f" ({sample_id})" if sample_id is not None else "")


@dataclass
class Problem:
    """One invalid sample in the form earlier callers used: its first code, all messages joined."""

    index: int
    reason: str
    message: str


@dataclass
class InvalidSample:
    index: int
    id: str | None
    errors: list[tuple[str, str]]
    derived: list[str] = field(default_factory=list)  # codes that follow from the first one: listed, not counted

    @property
    def codes(self) -> list[str]:
        return [code for code, _ in self.errors]

    def line(self) -> str:
        return f"{_label(self.index, self.id)}: " + "; ".join(f"[{code}] {message}" for code, message in self.errors)


@dataclass
class ValidationReport:
    path: str
    total: int = 0
    samples: list = field(default_factory=list)  # (index, CloneSample) of the valid samples
    invalid: list[InvalidSample] = field(default_factory=list)
    warnings: list[dict] = field(default_factory=list)  # {"index", "id", "code", "message"}
    require_target: bool = True

    @property
    def ok(self) -> bool:
        return not self.invalid

    @property
    def valid(self) -> int:
        return len(self.samples)

    @property
    def problems(self) -> list[Problem]:
        return [Problem(s.index, s.errors[0][0], "; ".join(m for _, m in s.errors)) for s in self.invalid]

    def code_counts(self) -> Counter:
        """Samples per code (a sample with a code twice counts once); codes that only follow from a
        sample's first one (its cause) are not counted."""
        return Counter(code for s in self.invalid for code in dict.fromkeys(s.codes) if code not in s.derived)

    def to_dict(self) -> dict:
        return {
            "path": self.path,
            "total": self.total,
            "valid": self.valid,
            "invalid": [
                {
                    "index": s.index,
                    "id": s.id,
                    "errors": [
                        {"code": c, "message": m, **({"derived": True} if c in s.derived else {})} for c, m in s.errors
                    ],
                }
                for s in self.invalid
            ],
            "warnings": self.warnings,
            "counts": dict(self.code_counts()),
        }

    def write(self, path: str | Path) -> None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(json.dumps(self.to_dict(), indent=2, ensure_ascii=False), encoding="utf-8")

    def summary(self, limit: int | None = None) -> str:
        """Counts per code, then the invalid samples (all of them, or the first `limit`), then warnings."""
        lines = [f"{self.path}: {self.valid} valid, {len(self.invalid)} invalid of {self.total} samples"]
        for code, n in sorted(self.code_counts().items(), key=lambda kv: (-kv[1], kv[0])):
            lines.append(f"  {code}: {n}")
        shown = self.invalid if limit is None else self.invalid[:limit]
        lines += ["  " + s.line() for s in shown]
        if len(shown) < len(self.invalid):
            lines.append(f"  ... and {len(self.invalid) - len(shown)} more (--report R.json lists them all)")
        if "no_target_audio" in self.code_counts() and self.require_target:
            lines.append(f"hint: {FOR_INFERENCE_HINT}")
        if self.warnings:
            counts = Counter(w["code"] for w in self.warnings)
            lines.append("warnings (samples stay valid): " + ", ".join(f"{c}: {n}" for c, n in sorted(counts.items())))
            shown_w = self.warnings if limit is None else self.warnings[:limit]
            for w in shown_w:
                lines.append(f"  {_label(w['index'], w['id'])}: [{w['code']}] {w['message']}")
            if len(shown_w) < len(self.warnings):
                lines.append(f"  ... and {len(self.warnings) - len(shown_w)} more warnings")
        return "\n".join(lines)


class InvalidDataError(ValueError):
    def __init__(self, report: ValidationReport):
        hint = (
            "Fix or remove these samples (run `higgs-lora validate` to list them)."
            if report.total
            else "The file holds no samples."
        )
        super().__init__(report.summary() + "\n" + hint)
        self.report = report


def check_audio_files(
    paths: list[str], limits: AudioLimits, workers: int = 1, progress: bool = False
) -> dict[str, AudioInfo]:
    """AudioInfo per path; `workers` > 1 decodes in that many processes. Never raises for a bad file."""
    from tqdm.auto import tqdm

    results: dict[str, AudioInfo] = {}
    bar = tqdm(total=len(paths), desc="Checking audio", unit="file", disable=not progress or not paths)
    chunk = 16
    chunks = [paths[i : i + chunk] for i in range(0, len(paths), chunk)]
    if workers > 1 and len(chunks) > 1:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        # spawn: the parent may hold torch threads or CUDA, which fork does not copy safely.
        with ProcessPoolExecutor(
            max_workers=min(workers, len(chunks)), mp_context=multiprocessing.get_context("spawn")
        ) as pool:
            for infos in pool.map(check_many, chunks, [limits] * len(chunks)):
                results.update((i.path, i) for i in infos)
                bar.update(len(infos))
    else:
        for part in chunks:
            results.update((i.path, i) for i in check_many(part, limits))
            bar.update(len(part))
    bar.close()
    return results


def validate_file(
    path: str | Path,
    default_system_prompt: str = DEFAULT_SYSTEM_PROMPT,
    require_target: bool = True,
    check_audio: bool = True,
    *,
    min_duration: float = MIN_SECONDS,
    max_duration: float = MAX_SECONDS,
    silence_dbfs: float = CLIP_SILENCE_DBFS,
    allow_remote_audio: bool = False,
    workers: int = 1,
    text_normalization=None,
    min_chars_per_second: float = MIN_CHARS_PER_SECOND,
    max_chars_per_second: float = MAX_CHARS_PER_SECOND,
    progress: bool = False,
    audio_cache=None,
) -> ValidationReport:
    """Classify every sample of `path`. Raises DataFileError only when the file itself cannot be read."""
    path = Path(path)
    normalizer = TextNormalizer.from_config(text_normalization)
    report = ValidationReport(path=str(path), require_target=require_target)
    entries = []  # (index, id, sample or None, errors, [(role, resolved audio path)], texts per role)
    for index, record in enumerate(iter_records(path)):
        c = extract(record)
        if isinstance(c.ref_text, str):
            c.ref_text = normalizer(c.ref_text)
        if isinstance(c.target_text, str):
            c.target_text = normalizer(c.target_text)
        errors = component_errors(c, require_target)
        derived = c.derived
        sample = None if errors else to_sample(c, path.parent, default_system_prompt)
        if sample is not None:  # its paths are resolved already (resolving is most of this loop's time)
            audio = [("reference", sample.ref_audio)] + (
                [("target", sample.target_audio)] if sample.target_audio else []
            )
        else:
            audio = [
                (role, resolve_audio(p, path.parent))
                for role, p in (("reference", c.ref_audio), ("target", c.target_audio))
                if isinstance(p, str) and p
            ]
        texts = {"reference": c.ref_text, "target": c.target_text}
        entries.append((index, record_id(record), sample, errors, audio, texts, derived))
    report.total = len(entries)

    infos: dict[str, AudioInfo] = {}
    if check_audio:
        local = sorted({p for e in entries for _, p in e[4] if not is_remote(p)})
        limits = AudioLimits(min_duration, max_duration, silence_dbfs)
        if audio_cache is not None:  # data.check_cache: clips unchanged since their last check are not decoded
            infos, todo = audio_cache.split(local, limits)
            fresh = check_audio_files(todo, limits, workers=workers, progress=progress)
            audio_cache.add(fresh, limits)
            infos.update(fresh)
        else:
            infos = check_audio_files(local, limits, workers=workers, progress=progress)

    for index, sample_id, sample, errors, audio, texts, derived in entries:
        errors, warnings = list(errors), []
        for role, p in audio:
            if is_remote(p):
                if not allow_remote_audio:
                    errors.append(
                        ("remote_audio", f"{role} audio is a URL ({p}); download it, or pass --allow_remote_audio")
                    )
                continue
            info = infos.get(p)
            if info is None:
                continue
            if info.code:
                errors.append((info.code, f"{role} audio: {info.message}"))
            elif isinstance(texts[role], str) and info.seconds:
                warning = implausible_speaking_rate(
                    texts[role], info.seconds, min_chars_per_second, max_chars_per_second
                )
                if warning:
                    warnings.append(
                        {
                            "index": index,
                            "id": sample_id,
                            "code": "implausible_speaking_rate",
                            "message": f"{role}: {warning} ({p})",
                        }
                    )
        if errors:
            report.invalid.append(InvalidSample(index, sample_id, errors, derived))
        else:  # warnings only on valid samples: an invalid one is already listed
            report.samples.append((index, sample))
            report.warnings += warnings
    return report


def load_samples(
    path: str | Path,
    default_system_prompt: str = DEFAULT_SYSTEM_PROMPT,
    require_target: bool = True,
    text_normalization=None,
    **validate_kwargs,
) -> list:
    """All samples of a data file, transcripts normalised with `text_normalization` (the one text
    front-end training and inference share), or InvalidDataError listing every bad one."""
    report = validate_file(
        path, default_system_prompt, require_target, text_normalization=text_normalization, **validate_kwargs
    )
    if not report.ok or not report.samples:
        raise InvalidDataError(report)
    return [s for _, s in report.samples]
