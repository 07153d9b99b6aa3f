"""The training run's settings read back: defaults for infer, merge, clone and check-alignment.

Training writes `higgs_lora_run.json` next to the adapter (and merge copies it into the merged
folder). A command given such a folder takes its system prompt, codec, base model and text
normaliser settings from it unless a flag names them: a given flag wins, with a warning when it
contradicts the run. The commands give their flags a default of None so "not given" is visible.
No torch here: the CLI uses it before loading anything.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

from ..defaults import AUDIO_TOKENIZER, BASE_MODEL, DEFAULT_SYSTEM_PROMPT
from ..train.config import RUN_CONFIG, read_run_config

# setting name -> key in higgs_lora_run.json
RUN_KEYS = {
    "system_prompt": "system_prompt",
    "audio_tokenizer": "audio_tokenizer",
    "base_model": "base_model",
    "text_normalization": "text_normalization",
}
BUILTIN_DEFAULTS = {
    "system_prompt": DEFAULT_SYSTEM_PROMPT,
    "audio_tokenizer": AUDIO_TOKENIZER,
    "base_model": BASE_MODEL,
    "text_normalization": None,
}


@dataclass
class RunSettings:
    """Resolved settings, where the run config came from, and what the user should be told."""

    values: dict
    run_config_path: Path | None = None
    sources: dict = field(default_factory=dict)  # setting -> "flag" | "run" | "default"
    messages: list[str] = field(default_factory=list)

    def __getitem__(self, key: str):
        return self.values[key]

    def report(self, stream=None) -> None:
        for line in self.messages:
            print(line, file=stream or sys.stderr)


def find_run_config(*folders: str | Path | None) -> tuple[Path | None, dict]:
    """The first of `folders` (or, for a `checkpoint-N` folder, its parent) that holds the run file."""
    for folder in folders:
        if not folder:
            continue
        folder = Path(folder)
        for candidate in (folder, folder.parent if folder.name.startswith("checkpoint-") else None):
            if candidate is not None and (candidate / RUN_CONFIG).is_file():
                try:
                    return candidate / RUN_CONFIG, read_run_config(candidate)
                except json.JSONDecodeError as err:
                    raise ValueError(f"{candidate / RUN_CONFIG}: not valid JSON ({err})") from None
    return None, {}


def _same_path(a, b) -> bool:
    try:
        return Path(a).resolve() == Path(b).resolve()
    except (OSError, TypeError):
        return False


def _show(value) -> str:
    return repr(value) if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def resolve(flags: dict, *folders: str | Path | None, flag_names: dict | None = None) -> RunSettings:
    """flags: setting -> the flag's value (None when not given). Each setting: flag, else run, else default."""
    path, run = find_run_config(*folders)
    flag_names = flag_names or {}
    values, sources, used, messages = {}, {}, [], []
    for name, given in flags.items():
        key = RUN_KEYS.get(name, name)
        in_run = key in run
        if given is not None:
            values[name], sources[name] = given, "flag"
            # A merged folder named as the model holds its own run file: naming it is no contradiction.
            is_that_folder = name == "base_model" and path is not None and _same_path(given, path.parent)
            if in_run and run[key] != given and not is_that_folder:
                messages.append(
                    f"warning: {flag_names.get(name, '--' + name)} {_show(given)} differs from the "
                    f"training run's {_show(run[key])} ({path}); using the flag"
                )
        elif in_run:
            values[name], sources[name] = run[key], "run"
            used.append(f"{name.replace('_', ' ')} {_show(run[key])}")
        else:
            values[name], sources[name] = BUILTIN_DEFAULTS.get(name), "default"
    if used:
        messages.insert(0, f"settings from the training run ({path}): " + ", ".join(used))
    return RunSettings(values, path, sources, messages)


def validate_with_normalization(path, system_prompt: str, text_normalization, require_target: bool = False):
    """`data.validate.validate_file` with the run's text normaliser settings (None: the default)."""
    from ..data.validate import validate_file

    return validate_file(path, system_prompt, require_target=require_target, text_normalization=text_normalization)


def resolve_inference(
    model_path: str | None,
    lora_path: str | None,
    audio_tokenizer: str | None,
    system_prompt: str | None,
    model_flag: str = "--model_path",
    text_normalization: str | None = None,
) -> RunSettings:
    """infer / clone / the API: the run config next to the adapter, else in the (merged) model folder.

    With an adapter the model defaults to the run's base model; without one `model_path` is the
    model itself (a merged folder, whose run config supplies codec, prompt and normaliser).
    """
    flags = {
        "system_prompt": system_prompt,
        "audio_tokenizer": audio_tokenizer,
        "text_normalization": text_normalization,
    }
    if lora_path:
        flags["base_model"] = model_path
    settings = resolve(flags, lora_path, model_path, flag_names={"base_model": model_flag})
    settings.values["model_path"] = settings.values.pop("base_model") if lora_path else (model_path or BASE_MODEL)
    settings.values["lora_path"] = lora_path
    if lora_path:
        settings.sources["model_path"] = settings.sources.pop("base_model")
    return settings
