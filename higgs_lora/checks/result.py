"""One check's outcome (`CheckResult`) and the report of all of them (`AlignmentReport`)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class CheckResult:
    """One check's outcome; `details`: its per-sample rows or figures (written to the report as is)."""

    name: str
    ok: bool
    summary: str
    details: dict | list = field(default_factory=dict)


@dataclass
class AlignmentReport:
    """Every check run, and the run's facts (`meta`: sample count, codebooks, the fit's settings)."""

    checks: list[CheckResult]
    meta: dict

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    def to_json(self) -> dict:
        return {
            "ok": self.ok,
            **self.meta,
            "checks": {c.name: {"ok": c.ok, "summary": c.summary, "details": c.details} for c in self.checks},
        }

    def write(self, path: str | Path) -> None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(json.dumps(self.to_json(), indent=2, ensure_ascii=False), encoding="utf-8")

    def text(self) -> str:
        lines = [f"[{'PASS' if c.ok else 'FAIL'}] {c.name}: {c.summary}" for c in self.checks]
        lines.append("alignment OK" if self.ok else "alignment FAILED")
        return "\n".join(lines)
