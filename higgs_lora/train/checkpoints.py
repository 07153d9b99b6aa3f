"""Checkpoints that survive crashes: atomic saves, `latest` resume, and no silent reuse of a run folder.

A checkpoint is written under a staging name (`.staging-checkpoint-N/checkpoint-N`) and renamed into
place only once every file is on disk, with a marker listing the files and their sizes. A crash or a
full disk in the middle of a save therefore leaves the previous checkpoints untouched and never a
half-written `checkpoint-N` that `latest` (or Trainer's rotation) would pick up.

Torch-free: the CLI and the preflight import it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

from .config import RUN_CONFIG

MARKER = "higgs_lora_checkpoint.json"  # written last, inside the staging folder, before the rename
STAGING_PREFIX = ".staging-"  # never matches Trainer's `checkpoint-*` glob
# What a checkpoint must hold to resume exactly: weights, optimizer, scheduler, Trainer state, marker.
REQUIRED = ("trainer_state.json", "adapter_model.safetensors", "optimizer.pt", "scheduler.pt", MARKER)
_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")
# Files whose presence means an earlier run wrote into the folder.
_RUN_FILES = ("metrics.jsonl", "adapter_model.safetensors", RUN_CONFIG, "trainer_state.json")


def checkpoint_step(path: str | Path) -> int | None:
    match = _CHECKPOINT.match(Path(path).name)
    return int(match.group(1)) if match else None


def incomplete_reason(path: str | Path, require_marker: bool = True) -> str | None:
    """Why `path` is not a resumable checkpoint, or None when it is complete.

    Without `require_marker`, a checkpoint that has no marker (written by plain Trainer) passes when
    Trainer's files are all there; a marker that is present is always checked.
    """
    path = Path(path)
    if not path.is_dir():
        return "not a folder"
    needed = [n for n in REQUIRED if require_marker or n != MARKER]
    missing = [name for name in needed if not (path / name).is_file()]
    if missing:
        return "missing " + ", ".join(missing)
    if not (path / MARKER).is_file():
        return None
    try:
        files = json.loads((path / MARKER).read_text(encoding="utf-8"))["files"]
    except (ValueError, KeyError, OSError) as err:
        return f"unreadable {MARKER}: {err}"
    for name, size in files.items():
        actual = (path / name).stat().st_size if (path / name).is_file() else None
        if actual != size:
            return f"{name} is {actual} bytes, the save wrote {size}"
    return None


def list_checkpoints(output_dir: str | Path) -> list[Path]:
    """`checkpoint-N` folders in `output_dir`, oldest step first (complete or not)."""
    output_dir = Path(output_dir)
    if not output_dir.is_dir():
        return []
    found = [p for p in output_dir.iterdir() if p.is_dir() and checkpoint_step(p) is not None]
    return sorted(found, key=checkpoint_step)


def latest_checkpoint(output_dir: str | Path) -> Path | None:
    """The newest complete checkpoint in `output_dir` (None when there is none)."""
    for path in reversed(list_checkpoints(output_dir)):
        if incomplete_reason(path) is None:
            return path
    return None


def resolve_resume(resume: str | None, output_dir: str | Path) -> str | None:
    """`latest` -> the newest complete checkpoint's path; a path is checked. ValueError when unusable."""
    if not resume:
        return None
    if resume == "latest":
        found = latest_checkpoint(output_dir)
        if found is None:
            partial = [p.name for p in list_checkpoints(output_dir)]
            detail = f" (incomplete: {', '.join(partial)})" if partial else ""
            raise ValueError(
                f"--resume_from_checkpoint latest: no complete checkpoint in {output_dir}{detail}; "
                "start a new run without --resume_from_checkpoint"
            )
        return str(found)
    reason = incomplete_reason(resume, require_marker=False)
    if reason is not None:
        raise ValueError(
            f"--resume_from_checkpoint {resume}: not a complete checkpoint ({reason}); "
            f"use --resume_from_checkpoint latest to pick the newest complete one"
        )
    return str(resume)


class RunAlreadyFinished(Exception):
    """Resuming from the run's last step: there is nothing to train (the message says so)."""


def finished_step(checkpoint: str | Path, max_steps: int, num_epochs: float) -> int | None:
    """The checkpoint's step when it is the last step of a run with these settings, else None.

    Trainer resumed from the last step of a run that ended mid-epoch trains one step more (and saves,
    logs and evaluates it again), so a finished run has to be recognised before Trainer sees it. With
    --max_steps the plan is that number; with epochs it is the step count the run worked out, when the
    epochs asked for are the ones it ran with.
    """
    state = json.loads((Path(checkpoint) / "trainer_state.json").read_text(encoding="utf-8"))
    step = int(state.get("global_step", 0))
    if max_steps > 0:
        planned = max_steps
    elif float(state.get("num_train_epochs") or -1) == float(num_epochs):
        planned = state.get("max_steps")
    else:
        planned = None
    return step if planned and step >= planned else None


def earlier_run_files(output_dir: str | Path) -> list[str]:
    """What an earlier run left in `output_dir` (empty when the folder is new or holds no run)."""
    output_dir = Path(output_dir)
    if not output_dir.is_dir():
        return []
    found = [p.name for p in list_checkpoints(output_dir)]
    found += [name for name in _RUN_FILES if (output_dir / name).exists()]
    return found


def check_output_dir(output_dir: str | Path, overwrite: bool, resuming: bool) -> None:
    """Refuse (ValueError, nothing deleted) to start a fresh run on top of an earlier one."""
    if resuming or overwrite:
        return
    found = earlier_run_files(output_dir)
    if found:
        shown = ", ".join(found[:4]) + (", ..." if len(found) > 4 else "")
        raise ValueError(
            f"--output_dir {output_dir} already holds a training run ({shown}); "
            "continue it with --resume_from_checkpoint latest, start over with "
            "--overwrite_output_dir, or choose another --output_dir"
        )


def clear_earlier_run(output_dir: str | Path) -> list[str]:
    """For --overwrite_output_dir: remove the old run's checkpoints (else `latest` and rotation mix runs)."""
    removed = []
    for path in list_checkpoints(output_dir):
        shutil.rmtree(path)
        removed.append(path.name)
    remove_stale_staging(output_dir)
    return removed


def remove_stale_staging(output_dir: str | Path) -> None:
    """Staging folders are only ever left by a save that crashed; they hold nothing resumable."""
    output_dir = Path(output_dir)
    if output_dir.is_dir():
        for path in output_dir.glob(STAGING_PREFIX + "*"):
            shutil.rmtree(path, ignore_errors=True)


def staging_dir(output_dir: str | Path, step: int) -> Path:
    return Path(output_dir) / f"{STAGING_PREFIX}checkpoint-{step}"


def write_marker(checkpoint: str | Path, step: int) -> None:
    """Record every file and its size; written last, so its presence means the save finished."""
    checkpoint = Path(checkpoint)
    files = {p.name: p.stat().st_size for p in sorted(checkpoint.iterdir()) if p.is_file() and p.name != MARKER}
    tmp = checkpoint / (MARKER + ".tmp")
    with tmp.open("w", encoding="utf-8") as f:
        json.dump({"global_step": step, "files": files}, f, indent=1)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, checkpoint / MARKER)


def publish(staged: str | Path, final: str | Path) -> None:
    """Move a finished checkpoint folder into place; an older folder of the same name is replaced."""
    staged, final = Path(staged), Path(final)
    old = None
    if final.exists():
        old = final.with_name(f"{STAGING_PREFIX}old-{final.name}")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(final, old)
    os.replace(staged, final)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    _fsync_dir(final.parent)


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
