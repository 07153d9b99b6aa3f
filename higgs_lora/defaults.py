"""Defaults a user gets without flags: the real model, the real codec, the shared system prompt, LoRA targets.

Importable without torch: the CLI shows these in `--help`.
"""

# Pinned to the last revisions boson_multimodal 0.1.1 can read: Boson rewrote both repositories in
# place on 2026-04-04 for transformers' native format (model/refs.py has the details).
MODEL_REPO = "bosonai/higgs-audio-v2-generation-3B-base"
MODEL_REVISION = "10840182ca4ad5d9d9113b60b9bb3c1ef1ba3f84"  # 2025-07-28
TOKENIZER_REPO = "bosonai/higgs-audio-v2-tokenizer"
TOKENIZER_REVISION = "9d4988fbd4ad07b4cac3a5fa462741a41810dbec"  # 2025-07-22, the last with model.pth
BASE_MODEL = f"{MODEL_REPO}@{MODEL_REVISION}"
AUDIO_TOKENIZER = f"{TOKENIZER_REPO}@{TOKENIZER_REVISION}"
# The design document's prompt. Upstream examples use "Generate audio following instruction." or none;
# whichever is configured, training and inference build the prompt with the same code.
DEFAULT_SYSTEM_PROMPT = "Generate speech in the provided voice."

# The design's LoRA targets, as PEFT suffixes. Attention is shared by text and audio tokens;
# `mlp` is the text FFN and `audio_mlp` the DualFFN audio FFN of every layer; the two heads
# live under `audio_decoder_proj`. Targets a given model lacks are skipped with a notice.
DEFAULT_LORA_TARGETS = [
    "self_attn.q_proj",
    "self_attn.k_proj",
    "self_attn.v_proj",
    "self_attn.o_proj",
    "mlp.gate_proj",
    "mlp.up_proj",
    "mlp.down_proj",
    "audio_mlp.gate_proj",
    "audio_mlp.up_proj",
    "audio_mlp.down_proj",
    "text_lm_head",
    "audio_lm_head",
]

# Training's attention kernels (--attn_implementation), the first the default. sdpa: what transformers
# picks (PyTorch's scaled_dot_product_attention; `train.decoder` drops the padding mask where that is
# exact, so its flash kernel can run); flash_attention_2: the flash-attn package (CUDA); eager: the
# reference (stores every T×T probability).
ATTENTION_CHOICES = ("sdpa", "flash_attention_2", "eager")
