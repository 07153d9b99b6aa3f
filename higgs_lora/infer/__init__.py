"""Infer stage: voice-cloning generation and adapter merging."""
