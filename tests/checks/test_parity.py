"""Prompt parity and the label audit: they pass on the real pipeline and each catches its breakage.

- training collator with the delay pattern flipped  -> prompt_parity fails;
- the reference clip trained (start_index=None)     -> label_audit fails;
- a training cache with other codes, a training side that skips the text front-end -> prompt_parity fails.
"""

import dataclasses

import numpy as np
from alignment_kit import NAMES, UnmaskedReferenceDataset, by_name, flipped_delay_collator, run_tiny

from higgs_lora.checks.run import TrainingSide, run_checks
from higgs_lora.data.dataset import VoiceCloningDataset


def test_real_pipeline_prompt_parity_details(real_report, samples):
    rows = by_name(real_report)["prompt_parity"].details
    assert [r["index"] for r in rows] == list(range(len(samples)))
    assert all(r["ids_equal"] and r["reference_codes_equal"] and r["prompt_tokens"] > 0 for r in rows)


def test_real_pipeline_label_audit_details(real_report, samples, tiny_codec):
    rows = by_name(real_report)["label_audit"].details
    for row, sample in zip(rows, samples):
        frames = tiny_codec.encode(sample.target_audio).shape[1]
        # text labels: <|audio_out_bos|>, <|audio_eos|>, <|eot_id|> of the target turn
        assert row["text_labels"] == 3
        # audio labels: every target frame plus the stream EOS, in each of the 8 codebooks
        assert row["audio_labels"] == 8 * (frames + 1)
        assert row["reference_labels"] == 0
        assert row["stream_eos_trained"] and row["audio_labels_match_codes"]


def test_delay_pattern_mismatch_fails_prompt_parity(samples, tiny_model_factory, tiny_tokenizer, tiny_codec):
    side = TrainingSide(collator_factory=flipped_delay_collator)
    report = run_tiny(samples, tiny_model_factory, tiny_tokenizer, tiny_codec, side=side, overfit=False)
    parity = by_name(report)["prompt_parity"]
    assert not parity.ok and not report.ok
    # the token ids still agree; the reference codes the model sees do not
    assert all(r["ids_equal"] and not r["reference_codes_equal"] for r in parity.details)
    assert all("reference_shapes" in r for r in parity.details)
    assert "mismatch in samples [0, 1]" in parity.summary
    assert [c.name for c in report.checks] == NAMES[:2]


def test_unmasked_reference_fails_label_audit(samples, tiny_model_factory, tiny_tokenizer, tiny_codec):
    side = TrainingSide(dataset_cls=UnmaskedReferenceDataset)
    report = run_tiny(samples, tiny_model_factory, tiny_tokenizer, tiny_codec, side=side, overfit=False)
    checks = by_name(report)
    assert checks["prompt_parity"].ok  # same prompt; only the labels are wrong
    audit = checks["label_audit"]
    assert not audit.ok and not report.ok
    assert all(r["reference_labels"] > 0 for r in audit.details)
    assert "wrong labels in samples [0, 1]" in audit.summary


class CorruptCacheDataset(VoiceCloningDataset):
    """A training cache whose reference codes differ from what the codec gives."""

    def __init__(self, samples, *args, **kwargs):
        super().__init__(samples, *args, **kwargs)
        self._refs = {s.ref_audio for s in samples}

    def _load_codes(self, path):
        codes = super()._load_codes(path)
        return (codes.astype(np.int64) + 1) % 1024 if path in self._refs else codes


def test_parity_reads_the_training_cache(samples, tiny_tokenizer, tiny_codec, tiny_config):
    report = run_checks(
        samples,
        None,
        tiny_tokenizer,
        tiny_codec,
        side=TrainingSide(dataset_cls=CorruptCacheDataset),
        overfit=False,
        config=tiny_config,
        log=lambda *a: None,
    )
    parity = by_name(report)["prompt_parity"]
    assert not parity.ok and all(r["ids_equal"] and not r["reference_codes_equal"] for r in parity.details)


def test_prompt_parity_covers_the_text_front_end(samples, tiny_model_factory, tiny_tokenizer, tiny_codec):
    """Arabic transcripts with tatweel, diacritics, Persian digits and stray spaces: parity holds when both
    sides run the normaliser, and fails when the training side skips it."""
    arabic = [
        dataclasses.replace(s, ref_text="  مرحـــبا   بِكُم ۳ ", target_text="السَّلامُ   عليـكم ٢٠٢٤") for s in samples
    ]
    spec = "whitespace,tatweel,strip_diacritics,digits=western"
    both = run_tiny(arabic, tiny_model_factory, tiny_tokenizer, tiny_codec, overfit=False, text_normalization=spec)
    assert by_name(both)["prompt_parity"].ok
    skipped = run_tiny(
        arabic,
        tiny_model_factory,
        tiny_tokenizer,
        tiny_codec,
        overfit=False,
        text_normalization=spec,
        side=TrainingSide(normalize_text=False),
    )
    parity = by_name(skipped)["prompt_parity"]
    assert not parity.ok and all("first_difference_at" in row for row in parity.details)
    # with text already normalised, skipping it changes nothing: the failure above is the normaliser's
    from higgs_lora.data.text import normalize_sample

    normalised = [normalize_sample(s, spec) for s in arabic]
    plain = run_tiny(
        normalised,
        tiny_model_factory,
        tiny_tokenizer,
        tiny_codec,
        overfit=False,
        text_normalization=spec,
        side=TrainingSide(normalize_text=False),
    )
    assert by_name(plain)["prompt_parity"].ok
