#!/usr/bin/env python
"""Voice-cloning inference at the design's path (`higgs-lora infer`); `generate_arabic_speech` for Python use.

    python arb_inference.py --chatml_file data/test_samples.json --output_dir results/arabic_voice_cloning \
        --model_path models/voice_cloning_merged
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from higgs_lora import cli  # noqa: E402


def __getattr__(name):
    # `from arb_inference import generate_arabic_speech` (the design's Python entry point), imported on
    # first use so that `python arb_inference.py --help` does not load torch.
    if name == "generate_arabic_speech":
        from higgs_lora.infer.engine import generate_arabic_speech

        return generate_arabic_speech
    raise AttributeError(name)

if __name__ == "__main__":
    sys.exit(cli.run_command("infer", prog="arb_inference.py"))
