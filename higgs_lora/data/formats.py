"""Readers for the accepted input layouts, reduced to `CloneSample` components.

Accepted files: a JSON list of samples, a JSON object with a "samples" list, or JSON Lines.
Accepted samples:

- canonical ChatML (`messages`): [system], user(reference text), assistant(reference audio),
  user(target text), assistant(target audio);
- flat records: {"ref_text", "ref_audio", "target_text", "target_audio", ["speaker"], ["system_prompt"]}.

Relative audio paths are resolved against the data file's folder.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from .sample import CloneSample

FIFTH_MESSAGE_HINT = (
    'add a fifth message {"role": "assistant", "content": {"type": "audio", "audio_url": "<target.wav>"}} '
    "holding the recording of the target text (the design's four-message layout has nothing to learn)"
)


class SampleError(ValueError):
    """One sample that cannot be used: `reason` is a short code, the message says what to do."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


@dataclass
class DataFileError(ValueError):
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


def read_records(path: str | Path) -> list:
    path = Path(path)
    if not path.is_file():
        raise DataFileError(str(path), "data file not found")
    text = path.read_text(encoding="utf-8-sig")  # -sig: files saved by Windows editors start with a BOM
    try:
        data = json.loads(text)
    except json.JSONDecodeError as whole_err:
        records = []
        for lineno, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                raise DataFileError(str(path), f"not JSON ({whole_err}) nor JSON Lines (line {lineno})") from None
        return records
    if isinstance(data, dict) and isinstance(data.get("samples"), list):
        return data["samples"]
    if isinstance(data, list):
        return data
    if isinstance(data, dict) and ("messages" in data or "ref_audio" in data or "ref_text" in data):
        return [data]  # a single sample (or a one-line JSONL file)
    raise DataFileError(str(path), 'expected a list of samples, {"samples": [...]}, or JSON Lines')


def _text_of(content) -> str | None:
    if isinstance(content, str):
        return content
    if isinstance(content, dict) and content.get("type") == "text":
        return content.get("text")
    if isinstance(content, list) and len(content) == 1:
        return _text_of(content[0])
    return None


def _audio_of(content) -> str | None:
    if isinstance(content, dict) and content.get("type") == "audio":
        return content.get("audio_url") or None
    if isinstance(content, list) and len(content) == 1:
        return _audio_of(content[0])
    return None


def _resolve(path: str, base_dir: Path) -> str:
    p = Path(path).expanduser()
    return str(p if p.is_absolute() else (base_dir / p))


def _from_messages(record: dict, base_dir: Path, default_system_prompt: str, require_target: bool) -> CloneSample:
    messages = record["messages"]
    if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
        raise SampleError("bad_structure", '"messages" must be a list of {"role", "content"} objects')
    system = [m for m in messages if m.get("role") == "system"]
    turns = [m for m in messages if m.get("role") != "system"]
    if len(system) > 1 or (system and messages[0].get("role") != "system"):
        raise SampleError("bad_structure", "at most one system message, and it must come first")
    roles = [m.get("role") for m in turns]
    if roles == ["user", "assistant", "user"]:
        if require_target:
            raise SampleError("no_target_audio", f"sample has no target audio: {FIFTH_MESSAGE_HINT}")
        turns = turns + [{"role": "assistant", "content": None}]
    elif roles != ["user", "assistant", "user", "assistant"]:
        raise SampleError(
            "bad_structure",
            "expected messages [system], user(reference text), assistant(reference audio), "
            f"user(target text), assistant(target audio); got roles {[m.get('role') for m in messages]}",
        )
    ref_text, ref_audio = _text_of(turns[0].get("content")), _audio_of(turns[1].get("content"))
    target_text, target_audio = _text_of(turns[2].get("content")), _audio_of(turns[3].get("content"))
    if ref_text is None or target_text is None:
        raise SampleError("bad_structure", "user messages must hold plain text (reference and target transcripts)")
    if ref_audio is None:
        raise SampleError("bad_structure", 'the first assistant message must be {"type": "audio", "audio_url": ...}')
    if target_audio is None and require_target:
        raise SampleError("no_target_audio", f"the last assistant message is not audio: {FIFTH_MESSAGE_HINT}")
    system_prompt = _text_of(system[0].get("content")) if system else default_system_prompt
    if system_prompt is None:
        raise SampleError("bad_structure", "the system message must hold plain text")
    return CloneSample(
        ref_text=ref_text,
        ref_audio=_resolve(ref_audio, base_dir),
        target_text=target_text,
        target_audio=_resolve(target_audio, base_dir) if target_audio else None,
        system_prompt=system_prompt,
        speaker=record.get("speaker"),
    )


def _from_flat(record: dict, base_dir: Path, default_system_prompt: str, require_target: bool) -> CloneSample:
    missing = [k for k in ("ref_text", "ref_audio", "target_text") if not record.get(k)]
    if missing:
        raise SampleError("bad_structure", f"flat record lacks {missing}")
    if not record.get("target_audio") and require_target:
        raise SampleError("no_target_audio", 'flat record has no "target_audio": add the recording of target_text')
    return CloneSample(
        ref_text=record["ref_text"],
        ref_audio=_resolve(record["ref_audio"], base_dir),
        target_text=record["target_text"],
        target_audio=_resolve(record["target_audio"], base_dir) if record.get("target_audio") else None,
        system_prompt=record.get("system_prompt", default_system_prompt),
        speaker=record.get("speaker"),
    )


def sample_from_record(record, base_dir: Path, default_system_prompt: str, require_target: bool = True) -> CloneSample:
    """Components of one record; raises SampleError with a reason code. Does not touch the audio.

    `require_target=False` is for inference, where the target audio is what gets generated.
    """
    if not isinstance(record, dict):
        raise SampleError("bad_structure", f"a sample must be a JSON object, got {type(record).__name__}")
    if "messages" in record:
        sample = _from_messages(record, base_dir, default_system_prompt, require_target)
    elif "ref_audio" in record or "ref_text" in record:
        sample = _from_flat(record, base_dir, default_system_prompt, require_target)
    else:
        raise SampleError("bad_structure", 'a sample needs "messages" (ChatML) or ref_text/ref_audio/target_text/target_audio')
    for field in ("ref_text", "target_text"):
        if not getattr(sample, field).strip():
            raise SampleError("empty_text", f"{field.replace('_', ' ')} is empty")
    return sample
