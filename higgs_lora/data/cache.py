"""On-disk audio-code cache: each distinct audio file encoded once per codec, shared by all ranks.

Layout under ``CACHE_DIR/<codec identity hash>/``:

    identity.json          which codec (name, revision, rate, codebooks...) made these codes
    codes/ab/<sha256>.npy  int16 (num_codebooks, frames), keyed by the file's content hash
    paths/cd/<sha1>.json   per audio path: size + mtime + content key + frames, or the reason it failed

- Content-addressed: a reference shared by 100 samples, or the same clip under two names, is one entry.
- int16 on disk (codes < 1026 fit), read lazily with ``np.load(mmap_mode="r")``: host memory does not
  grow with the data set.
- Crash-safe: every file is written to a temporary name in its folder, flushed, then renamed
  (``os.replace`` is atomic), so a kill mid-write never leaves an entry that reads as valid.
- Resumable: a path whose size and mtime match its record and whose entry exists is not read again.
- Sharded: under torch.distributed each rank encodes the paths whose path hash falls to it, waits at
  a barrier (a gloo group with a long timeout: encoding can take hours), then reads everyone's records
  (`cache_sharding`).
- A clip that fails to decode is recorded with its reason and skipped; the caller decides what to do.

Inference reads the cache through `cached_codec`; `check_cache` remembers which clips decoded cleanly.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

import numpy as np

from .cache_sharding import distributed_context, path_owner

CACHE_FORMAT = 1
INT16_MAX = np.iinfo(np.int16).max


class CacheMissingError(ValueError):
    """Codes that `--require_cache` wanted are not in the cache."""


def codec_identity(codec) -> dict:
    """What decides the codes a codec produces; entries made by another identity are never mixed in."""
    return {
        "format": CACHE_FORMAT,
        "codec": type(codec).__name__,
        "name": str(getattr(codec, "name", type(codec).__name__)),
        "revision": getattr(codec, "revision", None),
        "sampling_rate": int(codec.sampling_rate),
        "num_codebooks": int(codec.num_codebooks),
        "codebook_size": getattr(codec, "codebook_size", None),
        "tps": getattr(codec, "tps", None),
    }


def file_sha256(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def _atomic_write(target: Path, write) -> None:
    """Write through `write(fileobj)` to a temporary file next to `target`, fsync, then rename."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        with _suppress():
            os.unlink(tmp)
        raise


class _suppress:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return exc[0] is not None and issubclass(exc[0], OSError)


@dataclass
class CacheEntry:
    """Where a path's codes live (key) and their shape, or why it has none (error)."""

    path: str
    key: str | None = None
    frames: int = 0
    codebooks: int = 0
    error: str | None = None


@dataclass
class BuildReport:
    encoded: int = 0  # clips this process encoded
    reused: int = 0  # clips this process found already done
    failed: dict[str, str] = field(default_factory=dict)  # path -> reason (all ranks)
    missing: list[str] = field(default_factory=list)  # not in the cache (require_cache) or not recorded
    entries: dict[str, CacheEntry] = field(default_factory=dict)  # path -> entry, every path asked for


class CodeCache:
    """The cache folder for one codec identity. `root=None` makes a private temporary folder."""

    def __init__(self, root: str | Path | None, identity: dict):
        self._tmp = None
        if root is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="higgs_lora_codes_")
            root = self._tmp.name
        self.root = Path(root)
        self.identity = identity
        digest = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:16]
        self.dir = self.root / f"{identity['name'].replace('/', '--')[-40:]}-{digest}"
        self.dir.mkdir(parents=True, exist_ok=True)
        ident = self.dir / "identity.json"
        if not ident.exists():
            _atomic_write(ident, lambda f: f.write(json.dumps(identity, indent=2).encode()))

    @classmethod
    def for_codec(cls, root: str | Path | None, codec) -> "CodeCache":
        return cls(root, codec_identity(codec))

    def __getstate__(self):
        # DataLoader workers may pickle the dataset; only the creating process owns (and deletes) a temp folder.
        state = dict(self.__dict__)
        state["_tmp"] = None
        return state

    # -- files
    def entry_file(self, key: str) -> Path:
        return self.dir / "codes" / key[:2] / f"{key}.npy"

    def record_file(self, path: str) -> Path:
        h = hashlib.sha1(os.path.abspath(path).encode("utf-8")).hexdigest()
        return self.dir / "paths" / h[:2] / f"{h}.json"

    # -- codes
    def put(self, key: str, codes: np.ndarray) -> None:
        codes = np.asarray(codes)
        if codes.ndim != 2 or codes.size == 0:
            raise ValueError(f"codes must be a non-empty (codebooks, frames) array, got shape {codes.shape}")
        if codes.min() < 0 or codes.max() > INT16_MAX:
            raise ValueError(f"codes outside 0..{INT16_MAX} cannot be stored as int16")
        data = np.ascontiguousarray(codes, dtype=np.int16)
        _atomic_write(self.entry_file(key), lambda f: np.save(f, data, allow_pickle=False))

    def has(self, key: str) -> bool:
        return self.entry_file(key).is_file()

    def load(self, key: str, shape: tuple[int, int] | None = None) -> np.ndarray:
        """The int16 codes, memory-mapped (nothing is read until used). Raises on a damaged entry."""
        path = self.entry_file(key)
        arr = np.load(path, mmap_mode="r", allow_pickle=False)
        if arr.dtype != np.int16 or arr.ndim != 2 or (shape is not None and tuple(arr.shape) != tuple(shape)):
            raise ValueError(f"{path}: damaged cache entry (dtype {arr.dtype}, shape {arr.shape})")
        return arr

    # -- per-path records
    def write_record(self, entry: CacheEntry, stat: os.stat_result | None) -> None:
        record = {
            "path": entry.path,
            "key": entry.key,
            "frames": entry.frames,
            "codebooks": entry.codebooks,
            "error": entry.error,
            "size": stat.st_size if stat else None,
            "mtime_ns": stat.st_mtime_ns if stat else None,
        }
        _atomic_write(self.record_file(entry.path), lambda f: f.write(json.dumps(record).encode()))

    def read_record(self, path: str) -> dict | None:
        try:
            return json.loads(self.record_file(path).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None

    def lookup(self, path: str) -> CacheEntry | None:
        """The path's entry if its record matches the file as it is now (or records a failure)."""
        record = self.read_record(path)
        if record is None:
            return None
        if record.get("error"):
            return CacheEntry(path, error=record["error"])
        try:
            stat = os.stat(path)
        except OSError:
            return None
        if (record.get("size"), record.get("mtime_ns")) != (stat.st_size, stat.st_mtime_ns):
            return None
        if not record.get("key") or not self.has(record["key"]):
            return None
        return CacheEntry(path, record["key"], int(record["frames"]), int(record["codebooks"]))

    def encoded_entry(self, path: str) -> CacheEntry | None:
        """The path's entry when its codes are cached and current (None when missing, stale or failed)."""
        entry = self.lookup(path)
        return entry if entry is not None and entry.error is None else None

    def encode_path(self, codec, path: str, encode=None) -> tuple[CacheEntry, bool]:
        """Make sure `path` has an entry; returns it and whether the codec ran. Failures are recorded."""
        from .codes import encode_file

        try:
            stat = os.stat(path)
        except OSError as exc:
            entry = CacheEntry(path, error=f"audio file not found ({exc.strerror})")
            self.write_record(entry, None)
            return entry, False
        try:
            key = file_sha256(path)
        except OSError as exc:
            entry = CacheEntry(path, error=f"cannot read file ({exc})")
            self.write_record(entry, stat)
            return entry, False
        ran = False
        try:
            codes = None
            if self.has(key):
                try:
                    codes = self.load(key)
                except Exception:  # a damaged entry is encoded again and replaced
                    codes = None
            if codes is None:
                codes = (encode or encode_file)(codec, path)
                ran = True
                self.put(key, codes)
            entry = CacheEntry(path, key, int(codes.shape[1]), int(codes.shape[0]))
        except Exception as exc:  # any decode/encode failure: record it, keep going
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            entry = CacheEntry(path, error=f"{type(exc).__name__}: {reason}"[:500])
        self.write_record(entry, stat)
        return entry, ran

    def get_or_encode(self, codec, path: str, require: bool = False) -> np.ndarray:
        """Inference's path: the cached codes of `path`, encoding (and storing) them on a miss."""
        path = str(path)
        entry = self.encoded_entry(path)
        if entry is None:
            if require:
                raise CacheMissingError(f"{path}: not in the code cache {self.root} (--require_cache)")
            entry, _ = self.encode_path(codec, path)
            if entry.error:
                raise ValueError(f"{path}: {entry.error}")
        return self.load(entry.key, (entry.codebooks, entry.frames))

    def build(
        self,
        codec,
        paths: Iterable[str],
        require: bool = False,
        rank: int | None = None,
        world_size: int | None = None,
        barrier=None,
        desc: str = "Encoding audio",
    ) -> BuildReport:
        """Encode every distinct path not yet cached (this rank's share), wait for the others, read all records.

        `require=True` encodes nothing and lists what is missing. Without explicit rank/world/barrier,
        torch.distributed decides when it is initialised; otherwise this process does everything.
        """
        from tqdm.auto import tqdm

        unique = list(dict.fromkeys(str(p) for p in paths))
        report = BuildReport()
        if self._tmp is not None:  # a private temporary folder is not shared: this process does everything
            rank, world_size, barrier = 0, 1, None
        elif rank is None:
            rank, world_size, barrier = distributed_context()
        known: dict[str, CacheEntry] = {}  # this rank's paths, so their records are not read a second time
        if not require:
            todo = []
            for path in unique:
                if path_owner(path, world_size) == rank:
                    entry = self.encoded_entry(path)
                    if entry is None:
                        todo.append(path)
                    else:
                        known[path] = entry
            report.reused = len(known)
            label = desc if world_size == 1 else f"{desc} (rank {rank}/{world_size})"
            start = time.time()
            bar = tqdm(todo, desc=label, unit="clip", disable=not todo)
            for path in bar:
                known[path], ran = self.encode_path(codec, path)
                report.encoded += ran
            if todo and world_size > 1:
                print(f"rank {rank}: encoded {report.encoded} clips in {time.time() - start:.0f}s")
            if barrier is not None:
                barrier()
        for path in unique:
            entry = known[path] if path in known else self.lookup(path)
            if entry is None:
                report.missing.append(path)
            elif entry.error:
                report.failed[path] = entry.error
            else:
                report.entries[path] = entry
        return report


def missing_message(count: int, total: int, cache_dir, data: str | None, audio_tokenizer: str | None) -> str:
    cmd = f"higgs-lora tokenize {data or 'DATA'} --audio_tokenizer {audio_tokenizer or 'T'} --cache_dir {cache_dir}"
    return (
        f"{count} of {total} audio files are not in the code cache {cache_dir} (--require_cache); build it first: {cmd}"
    )


def failed_message(failed: dict[str, str], sample_indices: list[int], limit: int = 10) -> str:
    lines = [
        f"{len(failed)} audio file(s) could not be encoded, affecting {len(sample_indices)} sample(s) "
        f"{sample_indices[:limit]}{' ...' if len(sample_indices) > limit else ''}:"
    ]
    lines += [f"  {path}: {reason}" for path, reason in list(failed.items())[:limit]]
    if len(failed) > limit:
        lines.append(f"  ... and {len(failed) - limit} more")
    lines.append("fix or remove them, or pass --skip_invalid to train on the other samples")
    return "\n".join(lines)
