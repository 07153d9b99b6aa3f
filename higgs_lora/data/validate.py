"""Sample validation: each invalid sample is named by index with a reason code and what to do."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..defaults import DEFAULT_SYSTEM_PROMPT
from .audio import AudioError, audio_duration
from .formats import SampleError, read_records, sample_from_record
from .sample import CloneSample

MIN_AUDIO_SECONDS = 0.1


@dataclass
class Problem:
    index: int
    reason: str
    message: str


@dataclass
class ValidationReport:
    path: str
    total: int = 0
    samples: list[tuple[int, CloneSample]] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        lines = [f"{self.path}: {len(self.samples)} valid, {len(self.problems)} invalid of {self.total} samples"]
        lines += [f"  sample {p.index}: [{p.reason}] {p.message}" for p in self.problems]
        return "\n".join(lines)


class InvalidDataError(ValueError):
    def __init__(self, report: ValidationReport):
        super().__init__(report.summary() + "\nFix or remove these samples (run `higgs-lora validate` to list them).")
        self.report = report


def _check_audio(sample: CloneSample) -> None:
    for role, path in (("reference", sample.ref_audio), ("target", sample.target_audio)):
        if path is None:
            continue
        if not Path(path).is_file():
            raise SampleError("missing_audio", f"{role} audio not found: {path}")
        try:
            seconds = audio_duration(path)
        except AudioError as err:
            raise SampleError("unreadable_audio", f"{role} audio: {err}") from None
        if seconds < MIN_AUDIO_SECONDS:
            raise SampleError("audio_too_short", f"{role} audio is {seconds:.3f} s long: {path}")


def validate_file(
    path: str | Path,
    default_system_prompt: str = DEFAULT_SYSTEM_PROMPT,
    require_target: bool = True,
    check_audio: bool = True,
) -> ValidationReport:
    path = Path(path)
    records = read_records(path)
    report = ValidationReport(path=str(path), total=len(records))
    for index, record in enumerate(records):
        try:
            sample = sample_from_record(record, path.parent, default_system_prompt, require_target)
            if check_audio:
                _check_audio(sample)
        except SampleError as err:
            report.problems.append(Problem(index, err.reason, str(err)))
        else:
            report.samples.append((index, sample))
    return report


def load_samples(
    path: str | Path, default_system_prompt: str = DEFAULT_SYSTEM_PROMPT, require_target: bool = True
) -> list[CloneSample]:
    """All samples of a data file, or InvalidDataError listing every bad one (nothing is dropped silently)."""
    report = validate_file(path, default_system_prompt, require_target)
    if not report.ok:
        raise InvalidDataError(report)
    if not report.samples:
        raise InvalidDataError(report)
    return [s for _, s in report.samples]
