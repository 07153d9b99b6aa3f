#!/usr/bin/env python
"""Voice-cloning inference at the design's path (the `higgs-lora infer` command); `generate_arabic_speech`
for Python use.

    python arb_inference.py --chatml_file data/test_samples.json --output_dir results/arabic_voice_cloning \
        --model_path models/voice_cloning_merged

    from arb_inference import generate_arabic_speech
    wav, sr = generate_arabic_speech(ref_text, ref_audio_path, target_text)   # model from HIGGS_LORA_MODEL ...
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from higgs_lora import cli  # noqa: E402


def generate_arabic_speech(
    ref_text, ref_audio_path, target_text, temperature=0.3, top_k=50, top_p=0.95, seed=None, **kwargs
):
    """The design's entry point (see `higgs_lora.infer.api.generate_arabic_speech`); torch loads on first call."""
    from higgs_lora.infer.api import generate_arabic_speech as generate

    return generate(ref_text, ref_audio_path, target_text, temperature, top_k, top_p, seed, **kwargs)


def main(argv=None) -> int:
    return cli.run_command("infer", argv, prog="arb_inference.py")


if __name__ == "__main__":
    sys.exit(main())
