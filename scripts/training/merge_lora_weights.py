#!/usr/bin/env python
"""Merge a LoRA adapter into the base model (the design's path for `higgs-lora merge`).

    python scripts/training/merge_lora_weights.py --base_model bosonai/higgs-audio-v2-generation-3B-base \
        --lora_path checkpoints/voice_cloning --output_path models/voice_cloning_merged
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from higgs_lora import cli  # noqa: E402

if __name__ == "__main__":
    sys.exit(cli.run_command("merge", prog="merge_lora_weights.py"))
