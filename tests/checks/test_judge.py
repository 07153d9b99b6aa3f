"""The judge runs the model as infer does (no autocast, infer's KV cache), and `--lora_path` judges the
run's own adapter on its own samples, nothing fitted.
"""

import functools
import json

import pytest
import torch
from alignment_kit import UnmaskedReferenceDataset, by_name, flipped_delay_collator, run_tiny

from higgs_lora.checks.run import TrainingSide, run_checks
from higgs_lora.train.loss import compute_loss


def test_bf16_fit_with_cuda_autocast_fp32_ops_emulated_then_regeneration_as_infer(samples, tiny_tokenizer, tiny_codec):
    """check-alignment on the tiny model in bf16 (auto on a GPU): the fit runs under autocast with CUDA's
    fp32 ops emulated, greedy generation without autocast as infer runs, and the tiny target is still
    reproduced exactly. (The CPU's dynamic cache here; the static cache a GPU picks is the next test.)"""
    from cuda_autocast import cuda_autocast_fp32_ops

    from higgs_lora.model.load import load_model
    from higgs_lora.model.precision import resolve_precision

    precision = resolve_precision("bf16", "cpu")
    with cuda_autocast_fp32_ops():
        model = load_model("tiny", device="cpu", dtype=precision.weights_dtype)
        report = run_tiny(
            samples,
            lambda: model,
            tiny_tokenizer,
            tiny_codec,
            precision=precision,
            mode="regenerate",
            max_steps=100,
            check_every=50,
        )
    check = by_name(report)["overfit_regenerate"]
    assert report.ok and check.details["precision"] == "bf16", check.summary


def test_bf16_regeneration_with_the_static_cache_infer_uses_on_cuda(samples, tiny_tokenizer, tiny_codec):
    """On CUDA `infer` picks the static KV cache; the judge must generate as infer does there. The
    static cache is allocated in the weights' dtype (fp32 once the fit upcasts them), so a judge that
    generated under bf16 autocast crashed in `index_copy_` (Float vs BFloat16) on every GPU."""
    from higgs_lora.model.load import load_model
    from higgs_lora.model.precision import resolve_precision

    precision = resolve_precision("bf16", "cpu")
    model = load_model("tiny", device="cpu", dtype=precision.weights_dtype)
    report = run_tiny(
        samples,
        lambda: model,
        tiny_tokenizer,
        tiny_codec,
        precision=precision,
        mode="regenerate",
        max_steps=100,
        check_every=50,
        cache="static",
    )
    check = by_name(report)["overfit_regenerate"]
    assert check.details["cache"] == "static" and check.details["precision"] == "bf16"
    assert report.ok, check.summary


def test_the_static_cache_crash_the_judge_used_to_hit(tiny_tokenizer, tiny_codec, samples):
    """The defect itself, pinned: the cloner on the static cache under bf16 autocast fails; the way
    infer runs it (no autocast) works. If upstream ever makes the first work, this test says so."""
    from higgs_lora.infer.engine import VoiceCloner
    from higgs_lora.infer.settings import GenerationSettings
    from higgs_lora.model.load import load_model
    from higgs_lora.model.precision import resolve_precision

    precision = resolve_precision("bf16", "cpu")
    model = precision.prepare(load_model("tiny", device="cpu", dtype=precision.weights_dtype))
    for p in model.parameters():
        p.requires_grad_(True)
    precision.prepare(model)  # everything trainable: fp32, as in the full-weight fit
    cloner = VoiceCloner(model, tiny_tokenizer, tiny_codec, cache="static", cache_lengths=(1024,))
    settings = GenerationSettings(max_new_tokens=12, temperature=0.0, ras_win_len=0)
    with pytest.raises(RuntimeError, match="same dtype"), torch.autocast("cpu", dtype=torch.bfloat16):
        cloner.generate(samples[0], settings)
    assert cloner.generate(samples[0], settings).raw_codes.shape[1] > 0


def test_lora_fit_on_bf16_weights_is_judged_as_infer_serves_it(samples, tiny_tokenizer, tiny_codec):
    """The released model's GPU path: bf16 base weights + recipe's fp32 LoRA, fitted under bf16 autocast, then
    judged without autocast (the unmerged adapter as infer serves it), teacher-forced and on the static cache."""
    from higgs_lora.model.load import load_model
    from higgs_lora.model.precision import resolve_precision

    precision = resolve_precision("bf16", "cpu")
    for mode in ("teacher_forced", "regenerate"):
        model = load_model("tiny", device="cpu", dtype=precision.weights_dtype)
        report = run_tiny(
            samples,
            lambda: model,
            tiny_tokenizer,
            tiny_codec,
            precision=precision,
            mode=mode,
            max_steps=4,
            check_every=4,
            lora_r=16,
            cache="static",
        )
        details = by_name(report)[f"overfit_{mode}"].details
        assert details["precision"] == "bf16" and details["steps"] == 4 and len(details["history"]) == 1
        assert details["lora_r"] == 16 and details["lora_alpha"] == 32
        assert mode == "teacher_forced" or details["cache"] == "static"


def _train_tiny_run(root, loss_fn=None):
    from higgs_lora.data.sample_data import create_sample_data
    from higgs_lora.train.recipe import TrainConfig, train

    data = create_sample_data(root / "d.json", n_samples=2)
    cfg = TrainConfig(
        train_data=str(data),
        output_dir=str(root / "run"),
        base_model="tiny",
        audio_tokenizer="tiny",
        batch_size=2,
        gradient_accumulation_steps=1,
        max_steps=80,
        logging_steps=10,
        save_steps=10**9,
        dataloader_num_workers=0,
        report_to="none",
        learning_rate=3e-3,
        lora_r=16,
        lora_alpha=32,
        lora_dropout=0.0,
        warmup_ratio=0.0,
    )
    return train(cfg, loss_fn=loss_fn)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    return _train_tiny_run(tmp_path_factory.mktemp("run_ok"))


def _no_fit(monkeypatch):
    from higgs_lora.train.trainer import HiggsAudioTrainer

    def refuse(*a, **k):
        raise AssertionError("--lora_path must not fit anything")

    monkeypatch.setattr(HiggsAudioTrainer, "train", refuse)


def test_lora_path_checks_the_runs_own_adapter_and_samples(tiny_run, tmp_path, monkeypatch):
    from higgs_lora.cli import main

    _no_fit(monkeypatch)
    report = tmp_path / "r.json"
    rc = main(["check-alignment", "--lora_path", str(tiny_run), "--report", str(report), "--device", "cpu"])
    data = json.loads(report.read_text(encoding="utf-8"))
    assert list(data["checks"]) == ["prompt_parity", "label_audit", "adapter_teacher_forced"]
    adapter = data["checks"]["adapter_teacher_forced"]["details"]
    assert rc == 0 and data["ok"], adapter
    assert data["train_data"] == json.loads((tiny_run / "higgs_lora_run.json").read_text())["train_data"]
    assert data["lora_path"] == str(tiny_run) and data["samples"] == 2
    assert adapter["agreement"] > adapter["agreement_adapter_off"]


def test_lora_path_fails_a_run_trained_with_an_unshifted_loss(tmp_path, monkeypatch):
    from higgs_lora.cli import main

    run = _train_tiny_run(tmp_path, loss_fn=functools.partial(compute_loss, shift=False))
    _no_fit(monkeypatch)
    report = tmp_path / "r.json"
    rc = main(["check-alignment", "--lora_path", str(run), "--report", str(report), "--device", "cpu"])
    data = json.loads(report.read_text(encoding="utf-8"))
    assert rc == 1 and not data["ok"]
    assert data["checks"]["prompt_parity"]["ok"] and data["checks"]["label_audit"]["ok"]  # the data side is right
    assert not data["checks"]["adapter_teacher_forced"]["ok"]


@pytest.mark.parametrize(
    "side, failing",
    [
        (TrainingSide(collator_factory=flipped_delay_collator), "prompt_parity"),
        (TrainingSide(dataset_cls=UnmaskedReferenceDataset), "label_audit"),
    ],
)
def test_lora_path_mode_catches_the_data_side_faults(tiny_run, tiny_tokenizer, tiny_codec, samples, side, failing):
    from higgs_lora.infer.engine import VoiceCloner

    cloner = VoiceCloner.load("tiny", str(tiny_run), "tiny", device="cpu", cache="dynamic")
    report = run_checks(
        samples, cloner.model, tiny_tokenizer, tiny_codec, side=side, overfit=False, adapter=True, log=lambda *a: None
    )
    assert not by_name(report)[failing].ok and not report.ok
