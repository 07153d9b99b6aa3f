"""The overfit check: one sample fitted through train's recipe, judged through inference.

The real pipeline passes in both judging modes (regeneration, teacher-forced agreement); an unshifted loss
(learns to copy its input) fails both; the fit is a padded batch of 2 under the training precision, with the
user's `train` flags; a diverging fit is a failed check.
"""

import dataclasses
import functools
import json

import pytest
import torch
from alignment_kit import (
    NAMES,
    UnmaskedReferenceDataset,
    by_name,
    check_alignment_tiny,
    flipped_delay_collator,
    run_tiny,
)

from higgs_lora.checks.fit import FIT_SETTINGS
from higgs_lora.checks.run import TrainingSide, run_checks
from higgs_lora.data.collator import build_collator
from higgs_lora.train.loss import compute_loss


def test_real_pipeline_overfit_regenerates_the_target_exactly(real_report, samples, tiny_codec):
    details = by_name(real_report)["overfit_regenerate"].details
    target_frames = tiny_codec.encode(samples[0].target_audio).shape[1]
    assert details["target_frames"] == details["generated_frames"] == target_frames
    assert details["code_agreement"] == 1.0
    last = details["history"][-1]
    assert last["exact_match"] and last["stopped"]
    assert details["steps"] == last["step"] <= 150


def test_unshifted_loss_fails_overfit_regenerate(samples, tiny_model_factory, tiny_tokenizer, tiny_codec):
    side = TrainingSide(loss_fn=functools.partial(compute_loss, shift=False))
    # one generation only, at the end: a model that never stops generates slowly
    report = run_tiny(
        samples, tiny_model_factory, tiny_tokenizer, tiny_codec, side=side, max_steps=150, check_every=150
    )
    checks = by_name(report)
    assert checks["prompt_parity"].ok and checks["label_audit"].ok  # the data side is still right
    assert not checks["overfit_regenerate"].ok and not report.ok
    details = checks["overfit_regenerate"].details
    assert details["steps"] == 150 and len(details["history"]) == 1
    # the copy-the-input model learns its objective (from ~ln(1024) = 6.9 at the start), yet does not
    # reproduce the target
    assert details["history"][0]["loss"] < 1.0
    assert not details["history"][0]["exact_match"] and details["code_agreement"] < 0.5
    assert "does NOT reproduce" in checks["overfit_regenerate"].summary


TF = dict(mode="teacher_forced", max_steps=60, check_every=10)


class RecordingCollator:
    """The real training collator, remembering what each fitting batch looked like."""

    batches: list = []

    def __init__(self, config, *args, **kwargs):
        self.inner = build_collator(config, *args, **kwargs)

    def __call__(self, samples):
        batch = self.inner(samples)
        RecordingCollator.batches.append(batch.attention_mask.clone())
        return batch


@pytest.fixture(scope="module")
def tf_report(samples, tiny_model_factory, tiny_tokenizer, tiny_codec):
    RecordingCollator.batches = []
    side = TrainingSide(collator_factory=RecordingCollator)
    report = run_tiny(samples, tiny_model_factory, tiny_tokenizer, tiny_codec, side=side, **TF)
    return report, list(RecordingCollator.batches)


def test_teacher_forced_passes_on_the_real_pipeline(tf_report):
    report, _ = tf_report
    assert [c.name for c in report.checks] == NAMES[:2] + ["overfit_teacher_forced"] and report.ok
    details = by_name(report)["overfit_teacher_forced"].details
    assert details["mode"] == "teacher_forced" and details["code_agreement"] == 1.0
    assert details["target_positions"] > 0 and details["steps"] <= TF["max_steps"]
    assert details["learning_rate"] == 3e-3 and details["precision"] == "no"  # the tiny model's settings, fp32 on CPU
    assert details["lora_r"] == FIT_SETTINGS["small"]["lora_r"]
    assert report.meta["overfit"]["mode"] == "teacher_forced" and report.meta["overfit"]["via"] == "train.recipe"


def test_fit_runs_padded_batches_of_two(tf_report):
    _, masks = tf_report
    fitting = [m for m in masks if m.shape[0] == 2]
    assert fitting and len(fitting) == len(masks) - 4  # 4 single-sample batches: parity + audit, 2 samples each
    assert all(bool((m == 0).any()) for m in fitting)  # padding in every fitting batch


def test_unshifted_loss_fails_teacher_forced(samples, tiny_model_factory, tiny_tokenizer, tiny_codec):
    side = TrainingSide(loss_fn=functools.partial(compute_loss, shift=False))
    report = run_tiny(samples, tiny_model_factory, tiny_tokenizer, tiny_codec, side=side, **TF)
    check = by_name(report)["overfit_teacher_forced"]
    assert not check.ok and not report.ok and check.details["steps"] == TF["max_steps"]
    assert check.details["history"][-1]["loss"] < 1.0 and check.details["code_agreement"] < 0.5
    assert "does NOT equal" in check.summary


def test_delay_pattern_mismatch_fails_teacher_forced_too(samples, tiny_model_factory, tiny_tokenizer, tiny_codec):
    side = TrainingSide(collator_factory=flipped_delay_collator)
    report = run_tiny(samples, tiny_model_factory, tiny_tokenizer, tiny_codec, side=side, **TF)
    checks = by_name(report)
    assert not checks["prompt_parity"].ok and not checks["overfit_teacher_forced"].ok
    assert checks["overfit_teacher_forced"].details["code_agreement"] < 0.5


def test_unmasked_reference_fails_with_teacher_forced_mode(samples, tiny_model_factory, tiny_tokenizer, tiny_codec):
    side = TrainingSide(dataset_cls=UnmaskedReferenceDataset)
    report = run_tiny(
        samples,
        tiny_model_factory,
        tiny_tokenizer,
        tiny_codec,
        side=side,
        mode="teacher_forced",
        max_steps=5,
        check_every=5,
    )
    assert not by_name(report)["label_audit"].ok and not report.ok


def test_fit_runs_under_the_training_precision(samples, tiny_tokenizer, tiny_codec, monkeypatch):
    """bf16 with CUDA autocast's fp32 ops emulated: the fit goes through autocast and recipe's precision
    scheme. The code embeddings come out in fp32 there (CUDA sums them in fp32), which crashed boson's
    merge in training before; the training forward (`train.decoder`) casts them in its gather, so even a
    model without the scheme's audio-embedding cast fits, and the one `load_model` gives passes."""
    from boson_multimodal.model.higgs_audio import HiggsAudioModel
    from cuda_autocast import cuda_autocast_fp32_ops

    from higgs_lora.model import precision as precision_module
    from higgs_lora.model.load import load_model
    from higgs_lora.model.precision import resolve_precision
    from higgs_lora.model.tiny import ensure_tiny_model

    precision = resolve_precision("bf16", "cpu")
    with cuda_autocast_fp32_ops():
        with monkeypatch.context() as m:
            m.setattr(precision_module, "match_audio_embedding_dtype", lambda model: None)
            bare = HiggsAudioModel.from_pretrained(str(ensure_tiny_model()), torch_dtype=torch.bfloat16)
            dtypes, embed = [], bare._embed_audio_ids

            def spy(ids):
                out = embed(ids)
                dtypes.append(out.dtype)
                return out

            bare._embed_audio_ids = spy
            report = run_tiny(samples, lambda: bare, tiny_tokenizer, tiny_codec, precision=precision, **TF)
        assert torch.float32 in dtypes  # the fit ran under (emulated CUDA) autocast
        assert by_name(report)["overfit_teacher_forced"].ok
        model = load_model("tiny", device="cpu", dtype=precision.weights_dtype)
        report = run_tiny(samples, lambda: model, tiny_tokenizer, tiny_codec, precision=precision, **TF)
    check = by_name(report)["overfit_teacher_forced"]
    assert check.details["precision"] == "bf16" and report.ok, check.summary


class CountingCodec:
    def __init__(self, codec):
        self.codec, self.calls = codec, []
        self.sampling_rate, self.tps, self.num_codebooks = codec.sampling_rate, codec.tps, codec.num_codebooks

    def encode(self, path, sr=None):
        self.calls.append(str(path))
        return self.codec.encode(path, sr)

    def decode(self, codes):
        return self.codec.decode(codes)


def test_each_file_is_encoded_once_per_side_and_the_fit_encodes_nothing(
    samples, tiny_model_factory, tiny_tokenizer, tiny_codec
):
    codec = CountingCodec(tiny_codec)
    run_checks(
        samples,
        tiny_model_factory(),
        tiny_tokenizer,
        codec,
        overfit=True,
        log=lambda *a: None,
        mode="teacher_forced",
        max_steps=2,
        check_every=2,
    )
    files = {p for s in samples for p in (s.ref_audio, s.target_audio)}
    refs = [s.ref_audio for s in samples]
    # the training cache encodes every file once; the inference side encodes each reference once
    assert sorted(codec.calls) == sorted(list(files) + refs)


@pytest.mark.parametrize("mode", ["regenerate", "teacher_forced"])
def test_a_side_that_skips_the_normaliser_fails_in_both_modes(
    samples, tiny_model_factory, tiny_tokenizer, tiny_codec, mode, monkeypatch
):
    """The skipped front-end reaches the fit too: recipe loads the fit's data without normalising."""
    from higgs_lora.train import recipe

    seen = []
    real_select = recipe.select_samples

    def spy(*args, **kwargs):
        seen.append(kwargs["text_normalization"])
        return real_select(*args, **kwargs)

    monkeypatch.setattr(recipe, "select_samples", spy)
    arabic = [dataclasses.replace(s, target_text="السَّلامُ   عليـكم ٢٠٢٤") for s in samples]
    spec = "whitespace,tatweel,strip_diacritics,digits=western"
    report = run_tiny(
        arabic,
        tiny_model_factory,
        tiny_tokenizer,
        tiny_codec,
        text_normalization=spec,
        mode=mode,
        max_steps=2,
        check_every=2,
        side=TrainingSide(normalize_text=False),
    )
    assert not by_name(report)["prompt_parity"].ok and not report.ok
    assert seen == ["none"]
    report = run_tiny(
        arabic,
        tiny_model_factory,
        tiny_tokenizer,
        tiny_codec,
        text_normalization=spec,
        mode=mode,
        max_steps=2,
        check_every=2,
    )
    assert by_name(report)["prompt_parity"].ok and seen == ["none", spec]


def test_the_fit_is_trains_recipe_with_the_users_train_flags(cli_data, tmp_path, monkeypatch):
    """Flags only train's recipe reads reach the fit: the LoRA rank and targets (recipe's apply_lora) and
    the loss weights (recipe's HiggsAudioTrainer); and the fit is a real run of recipe.train."""
    from higgs_lora.train import recipe

    seen = {}
    real_train, real_trainer = recipe.train, recipe.HiggsAudioTrainer

    def spy_train(cfg, *args, **kwargs):
        seen["cfg"] = cfg
        out = real_train(cfg, *args, **kwargs)
        seen["adapter"] = json.loads((out / "adapter_config.json").read_text())  # recipe saved its adapter
        return out

    class SpyTrainer(real_trainer):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            seen["weights"] = (self.text_loss_weight, self.audio_loss_weight)

    monkeypatch.setattr(recipe, "train", spy_train)
    monkeypatch.setattr(recipe, "HiggsAudioTrainer", SpyTrainer)
    report = tmp_path / "r.json"
    rc = check_alignment_tiny(
        cli_data,
        "--max_samples",
        "2",
        "--overfit_mode",
        "teacher_forced",
        "--max_steps",
        "3",
        "--check_every",
        "3",
        "--lora_r",
        "4",
        "--lora_targets",
        "self_attn.q_proj",
        "audio_mlp.up_proj",
        "--text_loss_weight",
        "0.5",
        "--audio_loss_weight",
        "2.0",
        "--report",
        str(report),
    )
    assert rc in (0, 1) and "cfg" in seen
    assert seen["adapter"]["r"] == 4 and seen["adapter"]["lora_alpha"] == 8
    assert sorted(seen["adapter"]["target_modules"]) == ["audio_mlp.up_proj", "self_attn.q_proj"]
    assert seen["weights"] == (0.5, 2.0) and seen["cfg"].base_model == "tiny"
    data = json.loads(report.read_text())
    assert data["overfit"]["lora_r"] == 4 and data["overfit"]["via"] == "train.recipe"


def test_a_diverging_fit_is_a_failed_check_not_a_crash(samples, tiny_model_factory, tiny_tokenizer, tiny_codec):
    """recipe's NaN guard stops the fit (TrainingAborted); the check reports it as a failure with a hint."""

    def nan_loss(*args, **kwargs):
        parts = compute_loss(*args, **kwargs)
        return dataclasses.replace(parts, loss=parts.loss * float("nan"))

    report = run_tiny(
        samples,
        tiny_model_factory,
        tiny_tokenizer,
        tiny_codec,
        side=TrainingSide(loss_fn=nan_loss),
        mode="teacher_forced",
        max_steps=20,
        check_every=20,
    )
    check = by_name(report)["overfit_teacher_forced"]
    assert not check.ok and not report.ok and "non-finite" in check.details["aborted"]
    assert "lower --learning_rate" in check.summary
