"""Processor files for the export: the voice-cloning chat template, feature extractor and processor config.

The template renders the prompt this project trains and infers with (`data/sample.build_messages` +
`GENERATION_PREFIX`) in the native processor's message format: a system turn, user turns holding text,
assistant turns holding one audio item each, and a generation prompt that opens the assistant turn
with `<|audio_out_bos|>`. It follows the format of the template on Boson's native hub snapshot
(`<|begin_of_text|>`, Llama-3 headers, text trimmed, assistant audio as
`<|audio_out_bos|><|AUDIO_OUT|><|audio_eos|>`), with one deliberate difference: the hub's template
refuses a conversation without a system message, while this project (like boson's
`prepare_chatml_sample`) simply omits the system turn, so this one does too.
"""

from __future__ import annotations

import json
from pathlib import Path

AUDIO_ITEM = "<|audio_out_bos|><|AUDIO_OUT|><|audio_eos|>"

CHAT_TEMPLATE = (
    "{{- bos_token -}}"
    "{%- for message in messages -%}"
    "{{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' -}}"
    "{%- if message['role'] == 'assistant' -%}"
    "{%- if message['content'] is string or message['content'] | selectattr('type', 'equalto', 'audio') | list | length != 1 -%}"
    "{{- raise_exception('an assistant turn holds exactly one audio item (the voice to continue)') -}}"
    "{%- endif -%}"
    "{{- '" + AUDIO_ITEM + "' -}}"
    "{%- elif message['content'] is string -%}"
    "{{- message['content'] | trim -}}"
    "{%- else -%}"
    "{%- for item in message['content'] if item['type'] == 'text' -%}{{- item['text'] | trim -}}{%- endfor -%}"
    "{%- endif -%}"
    "{{- '<|eot_id|>' -}}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}"
    "{{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n<|audio_out_bos|>' -}}"
    "{%- endif -%}"
)

PROCESSOR_CLASS = "HiggsAudioV2Processor"
CODEC_CLASS = "HiggsAudioV2TokenizerModel"


def feature_extractor_config(sampling_rate: int = 24000) -> dict:
    # hop_length 1: the processor hands raw samples to the codec, which pads to its own hop.
    return {
        "feature_extractor_type": "DacFeatureExtractor",
        "feature_size": 1,
        "hop_length": 1,
        "padding_side": "right",
        "padding_value": 0.0,
        "return_attention_mask": True,
        "sampling_rate": sampling_rate,
        "processor_class": PROCESSOR_CLASS,
    }


def write_processor(
    folder: Path, tokenizer, codec_folder: Path | None, stream_bos: int, stream_eos: int, sampling_rate: int = 24000
) -> None:
    """Tokenizer (with a pad token: the processor pads batches), template, feature extractor, processor config.

    The processor config names the codec folder by absolute path (transformers resolves it as given);
    pass `audio_tokenizer=` to `from_pretrained` after moving the export."""
    tokenizer = _with_pad(tokenizer)
    tokenizer.save_pretrained(folder)
    (folder / "chat_template.jinja").write_text(CHAT_TEMPLATE, encoding="utf-8")
    (folder / "preprocessor_config.json").write_text(
        json.dumps(feature_extractor_config(sampling_rate), indent=2), encoding="utf-8"
    )
    processor = {
        "processor_class": PROCESSOR_CLASS,
        "audio_token": "<|AUDIO_OUT|>",
        "audio_bos_token": "<|audio_out_bos|>",
        "audio_eos_token": "<|audio_eos|>",
        "audio_delay_token": "<|reserved_special_token_6|>",
        "audio_stream_bos_id": stream_bos,
        "audio_stream_eos_id": stream_eos,
    }
    if codec_folder is not None:
        processor["audio_tokenizer"] = {
            "audio_tokenizer_class": CODEC_CLASS,
            "audio_tokenizer_name_or_path": str(Path(codec_folder).resolve()),
        }
    (folder / "processor_config.json").write_text(json.dumps(processor, indent=2), encoding="utf-8")


def _with_pad(tokenizer):
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer
