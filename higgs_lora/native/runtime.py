"""The separately installed transformers >= 5.3 (`make setup` puts it in `<venv>/native-transformers`).

It cannot share an environment with boson_multimodal (it needs huggingface-hub >= 1.31 and tokenizers
>= 0.23.1, which boson's transformers 4.46.3 forbids), so only a subprocess puts it first on sys.path.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

NATIVE_FOLDER_NAME = "native-transformers"


def native_folder() -> Path:
    return Path(sys.prefix) / NATIVE_FOLDER_NAME


def require_native() -> Path:
    folder = native_folder()
    if not (folder / "transformers" / "models" / "higgs_audio_v2").is_dir():
        raise FileNotFoundError(
            f"{folder}: transformers >= 5.3 (native Higgs Audio v2) is not installed there; run `make setup`"
        )
    return folder


def run_native(argv: list[str], timeout: float = 900, cwd: str | None = None) -> subprocess.CompletedProcess:
    """`python argv...` with the native transformers first on sys.path (and this project importable)."""
    folder = require_native()
    env = dict(os.environ)
    project = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(
        [str(folder), project] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    )
    env.setdefault("HF_HUB_OFFLINE", "1")
    env.setdefault("TRANSFORMERS_OFFLINE", "1")
    return subprocess.run([sys.executable, *argv], env=env, capture_output=True, text=True, timeout=timeout, cwd=cwd)


def run_jobs(jobs: list[dict], workdir: str | Path, timeout: float = 900) -> list[dict]:
    """Run worker jobs (native/worker.py) in one native subprocess; raise with its stderr if it fails."""
    import torch

    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    torch.save(jobs, workdir / "jobs.pt")
    proc = run_native(
        ["-m", "higgs_lora.native.worker", str(workdir / "jobs.pt"), str(workdir / "results.pt")], timeout=timeout
    )
    if proc.returncode != 0:
        raise RuntimeError(f"native worker failed (exit {proc.returncode}):\n{proc.stderr[-4000:]}")
    return torch.load(workdir / "results.pt", weights_only=True)
