"""Audio checks done once: each clip's result keyed by its path, size and mtime, shared by ranks and restarts.

Validation decodes every clip to the end (duration, silence, readability): minutes on a 200k-clip corpus,
and under torchrun every rank did it. Rank 0 checks and writes the results here; the other ranks wait for
the file and take every result whose key still matches (`stat` only). A restart reads the same file, so
only clips that changed (size or mtime) or are new are decoded again; the limits are part of the key.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict
from pathlib import Path

from .audio_check import AudioInfo, AudioLimits

AUDIO_CHECKS = "audio_checks.json"
_VERSION = 1


def _key(path: str, limits: AudioLimits) -> str | None:
    try:
        st = os.stat(path)
    except OSError:
        return None  # a missing file is checked (and reported) every time
    return f"{path}|{st.st_size}|{st.st_mtime_ns}|{limits.min_seconds}|{limits.max_seconds}|{limits.silence_dbfs}"


class AudioCheckCache:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.entries: dict[str, dict] = {}
        self.hits = 0
        self._load()

    def _load(self) -> None:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return  # none yet, or damaged: check again
        if data.get("version") == _VERSION:
            self.entries = data.get("entries", {})

    def split(self, paths: list[str], limits: AudioLimits) -> tuple[dict[str, AudioInfo], list[str]]:
        """Results still valid for `paths`, and the paths that need checking."""
        known, todo = {}, []
        for p in paths:
            key = _key(p, limits)
            entry = self.entries.get(key) if key else None
            if entry is None:
                todo.append(p)
            else:
                known[p] = AudioInfo(**entry)
        self.hits += len(known)
        return known, todo

    def add(self, infos: dict[str, AudioInfo], limits: AudioLimits) -> None:
        for p, info in infos.items():
            key = _key(p, limits)
            if key and info.code != "unreadable":  # a read error may be passing (network file system)
                self.entries[key] = asdict(info)

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + f".tmp{os.getpid()}")
        tmp.write_text(json.dumps({"version": _VERSION, "entries": self.entries}), encoding="utf-8")
        os.replace(tmp, self.path)  # readers see the old file or the whole new one

    def wait_for(self, since: float, timeout_s: float = 3600, poll_s: float = 2.0) -> bool:
        """Block until the file is (re)written after `since` (rank 0 finished), then reload it."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                if self.path.stat().st_mtime >= since:
                    self._load()
                    return True
            except OSError:
                pass
            time.sleep(poll_s)
        return False
