#!/usr/bin/env python
"""Voice-cloning inference at the design's path (`higgs-lora infer`); `generate_arabic_speech` for Python use.

    python arb_inference.py --chatml_file data/test_samples.json --output_dir results/arabic_voice_cloning \
        --model_path models/voice_cloning_merged
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from higgs_lora import cli  # noqa: E402
from higgs_lora.infer.engine import generate_arabic_speech  # noqa: E402,F401  the design's Python entry point

if __name__ == "__main__":
    sys.exit(cli.main(["infer", *sys.argv[1:]]))
