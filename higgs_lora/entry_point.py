"""The command a user types to run higgs-lora, so printed next steps run as printed (train's summary prints them)."""

from __future__ import annotations

import sys


def runnable_command() -> str:
    """How to call higgs-lora from this shell: `higgs-lora` when PATH finds this environment's, else the
    environment's own entry point (a .venv that was never activated), else `python -m higgs_lora`.
    The summaries print next steps with it, so they run as printed."""
    import shlex
    import shutil
    from pathlib import Path

    here = Path(sys.executable).parent / "higgs-lora"
    found = shutil.which("higgs-lora")
    if found and (not here.is_file() or Path(found).resolve() == here.resolve()):
        return "higgs-lora"
    if here.is_file():
        return shlex.quote(str(here))
    return f"{shlex.quote(sys.executable)} -m higgs_lora"
