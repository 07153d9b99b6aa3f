#!/usr/bin/env python
"""Merge a LoRA adapter into the base model (the design's path for `higgs-lora merge`).

    python scripts/training/merge_lora_weights.py --lora_path checkpoints/voice_cloning \
        --output_path models/voice_cloning_merged [--base_model B] [--dtype bf16|fp32]
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from higgs_lora import cli  # noqa: E402


def main(argv=None) -> int:
    return cli.run_command("merge", argv, prog="merge_lora_weights.py")


if __name__ == "__main__":
    sys.exit(main())
