"""Readers for the accepted input layouts, reduced to `CloneSample` components.

Files are read by `data_file` (JSON list, {"samples": [...]}, JSON Lines). Accepted samples:

- canonical ChatML (`messages`): [system], user(reference text), assistant(reference audio),
  user(target text), assistant(target audio);
- the design's four-message layout ([system], user, assistant, user) with the target audio in a
  top-level `target_audio` field or in `misc.target_audio`;
- the layout several public Higgs trainers use: user content a list [reference text, reference
  audio, "instruction: target text"], assistant content [target text, target audio];
- flat records: {"ref_text", "ref_audio", "target_text", "target_audio", ["speaker"], ["system_prompt"]}.

Relative audio paths are resolved against the data file's folder; http(s) URLs are kept as they are.
Every problem with a sample is one of the reason codes in `validate.CODES`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .audio_check import is_remote

FIFTH_MESSAGE_HINT = (
    'add a fifth message {"role": "assistant", "content": {"type": "audio", "audio_url": "<target.wav>"}} '
    "holding the recording of the target text (the design's four-message layout has nothing to learn)"
)
FOR_INFERENCE_HINT = "if this file is inference input, validate it with --for_inference"
ROLES = ("system", "user", "assistant")


class SampleError(ValueError):
    """One sample that cannot be used: `reason` is its first code, `errors` all (code, message) pairs."""

    def __init__(self, reason: str, message: str, errors: list[tuple[str, str]] | None = None):
        super().__init__(message)
        self.reason = reason
        self.errors = errors or [(reason, message)]


# ---------------------------------------------------------------- content helpers


def _items(content) -> list:
    return content if isinstance(content, list) else [content]


def _is_audio(item) -> bool:
    return isinstance(item, dict) and item.get("type") == "audio"


def _text_item(item) -> str | None:
    if isinstance(item, str):
        return item
    if isinstance(item, dict) and item.get("type") == "text" and isinstance(item.get("text"), str):
        return item["text"]
    return None


def _text_of(content) -> str | None:
    """The text of a content that is text only (a string, a text item, or a list of exactly one)."""
    items = _items(content)
    if len(items) != 1:
        return None
    return _text_item(items[0])


def _audio_of(content) -> str | None:
    """The audio path of a content holding exactly one audio item (text items alongside are ignored)."""
    audios = [i for i in _items(content) if _is_audio(i)]
    if len(audios) != 1:
        return None
    url = audios[0].get("audio_url")
    return url if isinstance(url, str) and url else None


def _strip_instruction(text: str) -> str:
    """'Please say: the words' -> 'the words' (the public-trainer layout prefixes the target text)."""
    head, sep, tail = text.partition(":")
    return tail.strip() if sep and tail.strip() else text


def resolve_audio(path: str, base_dir: Path) -> str:
    if is_remote(path):
        return path
    p = Path(path).expanduser()
    return str(p if p.is_absolute() else (base_dir / p))


# ---------------------------------------------------------------- record -> components


@dataclass
class Components:
    """What a record says, before any check: fields are None when absent; `errors` are (code, message)."""

    ref_text: object = None
    ref_audio: object = None
    target_text: object = None
    target_audio: object = None
    system_prompt: object = None
    speaker: object = None
    errors: list = field(default_factory=list)
    # The turns are not where the layout puts them (a message missing, or one with an unknown role
    # dropped): every later slot then holds the wrong message, so only the first missing part is a cause.
    shifted: bool = False
    derived: list = field(default_factory=list)  # codes that follow from an earlier one (set by component_errors)


def record_id(record) -> str | None:
    """How a report names a sample besides its index: its id, else its speaker."""
    if not isinstance(record, dict):
        return None
    misc = record.get("misc") if isinstance(record.get("misc"), dict) else {}
    for value in (
        record.get("id"),
        record.get("sample_id"),
        misc.get("id"),
        record.get("speaker"),
        misc.get("speaker"),
    ):
        if isinstance(value, (str, int)) and not isinstance(value, bool) and str(value):
            return str(value)
    return None


def _extra_target_audio(record: dict):
    if record.get("target_audio"):
        return record["target_audio"]
    misc = record.get("misc")
    return misc.get("target_audio") if isinstance(misc, dict) else None


def extract(record) -> Components:
    """The components of any accepted layout, with a code for each one it lacks."""
    c = Components()
    if not isinstance(record, dict):
        c.errors.append(("not_an_object", f"a sample must be a JSON object, got {type(record).__name__}"))
        return c
    c.speaker = record.get("speaker")
    if "messages" in record:
        _extract_messages(record, c)
    elif any(k in record for k in ("ref_audio", "ref_text", "target_text", "target_audio")):
        c.ref_text, c.ref_audio = record.get("ref_text"), record.get("ref_audio")
        c.target_text, c.target_audio = record.get("target_text"), record.get("target_audio")
        c.system_prompt = record.get("system_prompt")
    else:
        c.errors.append(
            ("no_messages", 'a sample needs "messages" (ChatML) or ref_text/ref_audio/target_text/target_audio')
        )
    return c


def _extract_messages(record: dict, c: Components) -> None:
    messages = record["messages"]
    if not isinstance(messages, list) or not messages:
        c.errors.append(("no_messages", '"messages" must be a non-empty list of {"role", "content"} objects'))
        return
    bad = [i for i, m in enumerate(messages) if not isinstance(m, dict) or m.get("role") not in ROLES]
    if bad:
        roles = [m.get("role") if isinstance(m, dict) else type(m).__name__ for m in messages]
        c.errors.append(
            (
                "unknown_role",
                f"messages {bad} are not {{role, content}} objects with a role in {list(ROLES)}; got {roles}",
            )
        )
        messages = [m for i, m in enumerate(messages) if i not in bad]
    n_system = next((i for i, m in enumerate(messages) if m.get("role") != "system"), len(messages))
    system, turns = messages[:n_system], messages[n_system:]
    if any(m.get("role") == "system" for m in turns) or len(system) > 1:
        c.errors.append(("unknown_role", "at most one system message, and it must come first"))
        turns = [m for m in turns if m.get("role") != "system"]
    if system:
        c.system_prompt = _text_of(system[0].get("content"))
        if c.system_prompt is None:
            c.errors.append(("unknown_role", "the system message must hold plain text"))
    roles = [m.get("role") for m in turns]
    first = turns[0].get("content") if turns else None
    if roles[:1] == ["user"] and any(_is_audio(i) for i in _items(first)) and len(roles) <= 2:
        _extract_public_layout(turns, c)
        return
    if len(turns) > 4:
        c.errors.append(
            (
                "unknown_role",
                "expected user(reference text), assistant(reference audio), user(target text), "
                f"assistant(target audio) after the system prompt; got roles {roles}",
            )
        )
    slots = turns[:4] + [None] * (4 - min(len(turns), 4))
    c.shifted = any(
        slot is not None and slot.get("role") != role
        for slot, role in zip(slots, ("user", "assistant", "user", "assistant"))
    )

    def content(slot, role):
        return slot.get("content") if slot is not None and slot.get("role") == role else None

    c.ref_text = _text_of(content(slots[0], "user"))
    c.ref_audio = _audio_of(content(slots[1], "assistant"))
    c.target_text = _text_of(content(slots[2], "user"))
    c.target_audio = _audio_of(content(slots[3], "assistant"))
    if c.target_audio is None and slots[3] is None:
        c.target_audio = _extra_target_audio(record)


def _extract_public_layout(turns: list, c: Components) -> None:
    user = _items(turns[0].get("content"))
    texts = [t for t in map(_text_item, user) if t is not None]
    audios = [i for i in user if _is_audio(i)]
    c.ref_text = texts[0] if texts else None
    c.ref_audio = audios[0].get("audio_url") if audios else None
    instructed = _strip_instruction(texts[1]) if len(texts) > 1 else None
    if len(turns) > 1 and turns[1].get("role") == "assistant":
        answer = _items(turns[1].get("content"))
        answer_texts = [t for t in map(_text_item, answer) if t is not None]
        c.target_text = answer_texts[0] if answer_texts else instructed
        c.target_audio = _audio_of(answer)
    else:
        c.target_text = instructed


def component_errors(c: Components, require_target: bool) -> list[tuple[str, str]]:
    """Codes for what `c` lacks: structure first, then the parts in message order, so the first code is
    the cause. Codes that only follow from it (every part after a misplaced or dropped message) are
    listed after it and named in `c.derived`; summaries do not count them."""
    errors = list(c.errors)
    if errors and errors[0][0] in ("not_an_object", "no_messages"):
        return errors
    fields = []
    for value, code, what in (
        (c.ref_text, "no_reference_text", "reference transcript"),
        (c.ref_audio, "no_reference_audio", "reference audio"),
        (c.target_text, "no_target_text", "target text"),
        (c.target_audio, "no_target_audio", "target audio"),
    ):
        if code == "no_target_audio" and not require_target:
            continue
        if code.endswith("_audio"):
            if not isinstance(value, str) or not value:
                hint = (
                    'the first assistant message must be {"type": "audio", "audio_url": ...}'
                    if code == "no_reference_audio"
                    else f"{FIFTH_MESSAGE_HINT}; {FOR_INFERENCE_HINT}"
                )
                fields.append((code, f"no {what}: {hint}"))
        elif not isinstance(value, str):
            fields.append((code, f"no {what} (a user message, or field, of plain text)"))
        elif not value.strip():
            fields.append(("empty_text", f"the {what} is empty"))
    # After a structural error or a shifted layout, the missing parts are symptoms, not causes.
    first_derived = 0 if errors else (1 if c.shifted else len(fields))
    derived = fields[first_derived:]
    cause = errors[0][0] if errors else (fields[0][0] if fields else None)
    c.derived = [code for code, _ in derived]
    return (
        errors + fields[:first_derived] + [(code, f"{message} (follows from [{cause}])") for code, message in derived]
    )


def sample_from_record(record, base_dir: Path, default_system_prompt: str, require_target: bool = True):
    """Components of one record as a CloneSample; raises SampleError carrying every code. Does not touch the audio.

    `require_target=False` is for inference, where the target audio is what gets generated.
    """
    c = extract(record)
    errors = component_errors(c, require_target)
    if errors:
        raise SampleError(errors[0][0], "; ".join(f"[{code}] {msg}" for code, msg in errors), errors)
    return to_sample(c, base_dir, default_system_prompt)


def to_sample(c: Components, base_dir: Path, default_system_prompt: str):
    """The CloneSample of components that `component_errors` found complete; audio resolved against `base_dir`."""
    from .sample import CloneSample  # boson_multimodal is imported there; keep this module light

    target_audio = c.target_audio if isinstance(c.target_audio, str) and c.target_audio else None
    system_prompt = c.system_prompt if isinstance(c.system_prompt, str) else default_system_prompt
    return CloneSample(
        ref_text=c.ref_text,
        ref_audio=resolve_audio(c.ref_audio, base_dir),
        target_text=c.target_text,
        target_audio=resolve_audio(target_audio, base_dir) if target_audio else None,
        system_prompt=system_prompt,
        speaker=None if c.speaker is None else str(c.speaker),
    )
