"""What `convert` did: samples written per source, clips read and written per speaker, and every drop
with its reason (the console summary, and `--report R.json`)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field


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
