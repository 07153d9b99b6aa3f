"""Model stage: loading the base model and tokenizer, LoRA, activation checkpointing, the tiny kit."""
