"""Components of a cloning sample and THE prompt builder shared by training and inference.

A cloning sample is reduced to its components (system prompt, reference text, reference audio,
target text, target audio, speaker). Training and inference both build their ChatML from those
components with `build_messages`, so the prompt the model is trained on is, token for token, the
prompt it is asked to continue at inference:

    [system]  system prompt                      (omitted when the prompt is empty)
    user      reference transcript
    assistant <reference audio>                  (conditioning only: never a training target)
    user      target text
    assistant <target audio>                     (training only: the one trained turn)

At inference the last turn is replaced by the generation prefix below, which ends in
<|audio_out_bos|> exactly where the trained target turn has it. Long texts are generated chunk by
chunk (as upstream's examples/generation.py does): the earlier chunks of the same text then sit
between the reference and the current chunk as context, each a user turn (its text) followed by an
assistant audio turn (the audio generated for it), so the model continues in the voice it has
been producing. With no context the prompt is exactly the training prompt's prefix.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from boson_multimodal.data_types import AudioContent, ChatMLSample, Message
from boson_multimodal.dataset.chatml_dataset import prepare_chatml_sample

# What the serve engine appends to the prompt to open an assistant turn and force audio output.
GENERATION_PREFIX = "<|start_header_id|>assistant<|end_header_id|>\n\n<|audio_out_bos|>"


@dataclass(frozen=True)
class CloneSample:
    ref_text: str
    ref_audio: str
    target_text: str
    target_audio: str | None = None  # None for inference-only samples
    system_prompt: str = ""
    speaker: str | None = None


def build_messages(sample: CloneSample, with_target: bool, context: Sequence[tuple[str, str]] = ()) -> list[Message]:
    """`context`: (text, audio_url) of earlier generated chunks, inserted before the target text."""
    if context and with_target:
        raise ValueError("context turns are for chunked inference; a training sample has none")
    messages = []
    if sample.system_prompt:
        messages.append(Message(role="system", content=sample.system_prompt))
    messages += [
        Message(role="user", content=sample.ref_text),
        Message(role="assistant", content=AudioContent(audio_url=sample.ref_audio)),
    ]
    for text, audio_url in context:
        messages += [
            Message(role="user", content=text),
            Message(role="assistant", content=AudioContent(audio_url=audio_url)),
        ]
    messages.append(Message(role="user", content=sample.target_text))
    if with_target:
        if not sample.target_audio:
            raise ValueError("a training sample needs its target audio")
        messages.append(Message(role="assistant", content=AudioContent(audio_url=sample.target_audio)))
    return messages


def training_chatml(sample: CloneSample) -> ChatMLSample:
    """Five (or four, without system) messages; labels only on the last assistant turn."""
    messages = build_messages(sample, with_target=True)
    return ChatMLSample(messages=messages, start_index=len(messages) - 1, speaker=sample.speaker)


def inference_chatml(sample: CloneSample, context: Sequence[tuple[str, str]] = ()) -> ChatMLSample:
    return ChatMLSample(messages=build_messages(sample, with_target=False, context=context), speaker=sample.speaker)


def tokenize_chatml(chatml: ChatMLSample, tokenizer) -> tuple[list[int], list[int], list[str]]:
    """prepare_chatml_sample, with its failures turned into a ValueError that says why."""
    try:
        input_ids, label_ids, audio_contents, _ = prepare_chatml_sample(chatml, tokenizer)
    except TypeError as exc:
        # Upstream's error handler json.dumps the sample, which fails for a ChatMLSample and would
        # hide the real error behind "not JSON serializable"; that error is the context.
        cause = exc.__context__ or exc
        raise ValueError(
            f"boson_multimodal.prepare_chatml_sample could not tokenize the sample ({type(cause).__name__}: {cause})"
        ) from cause
    if input_ids is None:
        raise ValueError("boson_multimodal.prepare_chatml_sample could not tokenize the sample")
    return input_ids, label_ids, [a.audio_url for a in audio_contents]


def inference_prompt(
    sample: CloneSample, tokenizer, context: Sequence[tuple[str, str]] = ()
) -> tuple[list[int], list[str]]:
    """Token ids the model continues at inference, and the audio files they refer to (in order:
    the reference, then each context chunk's audio_url)."""
    input_ids, _, audio_paths = tokenize_chatml(inference_chatml(sample, context), tokenizer)
    input_ids = input_ids + tokenizer.encode(GENERATION_PREFIX, add_special_tokens=False)
    return input_ids, audio_paths
