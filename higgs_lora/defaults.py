"""Defaults a user gets without flags: the real model, the real codec, and the shared system prompt."""
BASE_MODEL = "bosonai/higgs-audio-v2-generation-3B-base"
AUDIO_TOKENIZER = "bosonai/higgs-audio-v2-tokenizer"
# The design document's prompt. Upstream examples use "Generate audio following instruction." or none;
# whichever is configured, training and inference build the prompt with the same code.
DEFAULT_SYSTEM_PROMPT = "Generate speech in the provided voice."
