"""What the check-alignment tests share: running the checks on the tiny model, and broken training sides.

Each broken side must fail its own check: the training collator with the delay pattern flipped fails prompt
parity; the reference clip trained (start_index=None) fails the label audit.
"""

import copy
import dataclasses

from higgs_lora.checks.run import run_checks
from higgs_lora.data.collator import build_collator
from higgs_lora.data.dataset import VoiceCloningDataset
from higgs_lora.data.sample import training_chatml

NAMES = ["prompt_parity", "label_audit", "overfit_regenerate"]


def check_alignment_tiny(data, *flags: str) -> int:
    """`higgs-lora check-alignment` on `data` with the tiny model and codec, plus `flags`; its exit code."""
    from higgs_lora.cli import main

    return main(
        ["check-alignment", "--train_data", str(data), "--base_model", "tiny", "--audio_tokenizer", "tiny", *flags]
    )


def run_tiny(samples, model_factory, tokenizer, codec, side=None, overfit=True, **kwargs):
    return run_checks(
        samples, model_factory(), tokenizer, codec, side=side, overfit=overfit, log=lambda *a: None, **kwargs
    )


def by_name(report):
    return {c.name: c for c in report.checks}


def flipped_delay_collator(config, *args, **kwargs):
    flipped = copy.deepcopy(config)
    flipped.use_delay_pattern = not config.use_delay_pattern
    return build_collator(flipped, *args, **kwargs)


class UnmaskedReferenceDataset(VoiceCloningDataset):
    """Trains every assistant turn, the reference clip included."""

    def chatml(self, sample):
        return dataclasses.replace(training_chatml(sample), start_index=None)
