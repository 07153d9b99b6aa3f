"""HiggsAudioTrainer's loss and loss-part logging; MetricsJsonlCallback's records."""

import json
import math

import pytest
import torch
from transformers import TrainerControl, TrainerState, TrainingArguments

from higgs_lora.data.collator import DictCollator, build_collator
from higgs_lora.train.loss import compute_loss
from higgs_lora.train.trainer import HiggsAudioTrainer, MetricsJsonlCallback


@pytest.fixture(scope="module")
def model(tiny_model_factory):
    return tiny_model_factory()


@pytest.fixture(scope="module")
def batches(tiny_dataset, tiny_config):
    collate = DictCollator(build_collator(tiny_config))
    return collate([tiny_dataset[0]]), collate([tiny_dataset[1]]), collate([tiny_dataset[0], tiny_dataset[1]])


@pytest.fixture
def trainer(model, tmp_path):
    args = TrainingArguments(
        output_dir=str(tmp_path),
        report_to=[],
        per_device_train_batch_size=2,
        remove_unused_columns=False,
        use_cpu=True,
        disable_tqdm=True,
    )
    return HiggsAudioTrainer(model=model, args=args, text_loss_weight=0.5, audio_loss_weight=2.0)


def test_compute_loss_equals_the_shifted_loss_function(trainer, model, batches):
    model.eval()
    for batch in batches:
        with torch.no_grad():
            got = trainer.compute_loss(model, batch)
            expected = compute_loss(model(**batch), batch["label_audio_ids"], 0.5, 2.0)
        assert got.ndim == 0
        torch.testing.assert_close(got, expected.loss)
        # the weights reach the loss: not the unweighted sum
        assert not torch.isclose(got, expected.text_loss + expected.audio_loss)


def test_compute_loss_return_outputs_and_gradients(trainer, model, batches):
    model.train()
    model.zero_grad()
    loss, outputs = trainer.compute_loss(model, batches[2], return_outputs=True)
    assert outputs.audio_logits.shape[1:] == (8, 1026)
    assert outputs.audio_logits.shape[0] == batches[2]["label_audio_ids"].shape[1]
    loss.backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and any(g.abs().sum() > 0 for g in grads)
    model.zero_grad()
    model.eval()


def test_log_adds_loss_parts_averaged_over_the_logged_steps(trainer, model, batches):
    with torch.no_grad():
        model.eval()
        parts = [compute_loss(model(**b), b["label_audio_ids"], 0.5, 2.0) for b in batches[:2]]
        model.train()  # parts are only accumulated in training mode (no dropout in the tiny base model)
        for b in batches[:2]:
            trainer.compute_loss(model, b)
    model.eval()
    trainer.log({"loss": 1.25})
    logged = trainer.state.log_history[-1]
    assert logged["loss"] == 1.25
    assert logged["text_loss"] == pytest.approx(float(sum(p.text_loss for p in parts) / 2), abs=1e-5)
    assert logged["audio_loss"] == pytest.approx(float(sum(p.audio_loss for p in parts) / 2), abs=1e-5)
    for c in range(8):
        expected = float(sum(p.codebook_losses[c] for p in parts) / 2)
        assert logged[f"audio_loss_cb{c}"] == pytest.approx(expected, abs=1e-5)
    # the accumulator was reset: the next log has no stale parts
    trainer.log({"loss": 2.0})
    assert "text_loss" not in trainer.state.log_history[-1]


def test_eval_mode_loss_is_not_accumulated_and_non_loss_logs_get_no_parts(trainer, model, batches):
    model.eval()
    with torch.no_grad():
        trainer.compute_loss(model, batches[0])
    trainer.log({"train_runtime": 1.0})
    assert "text_loss" not in trainer.state.log_history[-1]
    trainer.log({"loss": 3.0})
    assert "text_loss" not in trainer.state.log_history[-1]


# --- MetricsJsonlCallback --------------------------------------------------------------------


def _state(zero: bool, step: int = 7, epoch: float = 1.5) -> TrainerState:
    state = TrainerState()
    state.is_world_process_zero = zero
    state.global_step, state.epoch = step, epoch
    return state


def _on_log(callback, state, logs):
    callback.on_log(None, state, TrainerControl(), logs=logs)


def test_metrics_callback_writes_only_on_process_zero(tmp_path):
    path = tmp_path / "sub" / "metrics.jsonl"
    callback = MetricsJsonlCallback(path)
    _on_log(callback, _state(zero=False), {"loss": 1.0})
    assert not path.exists()
    _on_log(callback, _state(zero=True), {"loss": 1.0})
    assert path.is_file()


def test_metrics_callback_records_training_and_eval_logs_only(tmp_path):
    path = tmp_path / "metrics.jsonl"
    callback = MetricsJsonlCallback(path)
    _on_log(
        callback,
        _state(True, step=1, epoch=0.5),
        {"loss": 2.5, "learning_rate": 1e-4, "grad_norm": float("nan"), "note": "text", "text_loss": 1.0},
    )
    _on_log(callback, _state(True, step=2), {"train_runtime": 3.0, "train_loss": 2.0})  # end-of-training summary
    _on_log(callback, _state(True, step=2), {"eval_loss": 2.0, "eval_text_loss": 0.5})
    _on_log(callback, _state(True, step=2), None)
    _on_log(callback, _state(True, step=3, epoch=1.0), {"loss": 2.0})
    records = [json.loads(line) for line in path.read_text().splitlines()]
    assert [r["step"] for r in records] == [1, 2, 3]
    first = records[0]
    assert first == {"step": 1, "epoch": 0.5, "loss": 2.5, "learning_rate": 1e-4, "text_loss": 1.0}
    assert records[1] == {"step": 2, "epoch": 1.5, "eval_loss": 2.0, "eval_text_loss": 0.5}
    assert all(math.isfinite(v) for r in records for v in r.values())


# --- consistency loss ------------------------------------------------------------------------


def _consistency_trainer(model, tmp_path, weight=1.0):
    args = TrainingArguments(
        output_dir=str(tmp_path),
        report_to=[],
        per_device_train_batch_size=2,
        remove_unused_columns=False,
        use_cpu=True,
        disable_tqdm=True,
    )
    return HiggsAudioTrainer(model=model, args=args, consistency_loss_weight=weight)


def test_consistency_loss_zero_for_a_fresh_adapter_positive_after_training(tiny_model_factory, batches, tmp_path):
    from higgs_lora.model.load import apply_lora

    model = apply_lora(tiny_model_factory(), 4, 8, 0.0)
    trainer = _consistency_trainer(model, tmp_path)
    model.train()
    loss = trainer.compute_loss(model, batches[2])
    summary = trainer._train_meter.summary("cpu")
    # LoRA B starts at zero: the adapted model is the base model, KL exactly 0
    assert summary["consistency_loss"] == pytest.approx(0.0, abs=1e-7)
    assert float(loss) == pytest.approx(summary["text_loss"] + summary["audio_loss"], abs=1e-4)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    for _ in range(3):
        optimizer.zero_grad()
        trainer.compute_loss(model, batches[2]).backward()
        optimizer.step()
    trainer._train_meter.reset()
    loss = trainer.compute_loss(model, batches[2])
    summary = trainer._train_meter.summary("cpu")
    assert summary["consistency_loss"] > 1e-4
    assert float(loss) == pytest.approx(
        summary["text_loss"] + summary["audio_loss"] + summary["consistency_loss"], abs=1e-4
    )
    # disabling the adapter for the base forward is only a context: the adapter is back on afterwards
    lora_layers = [m for m in model.modules() if hasattr(m, "lora_A")]
    assert lora_layers and not any(m.disable_adapters for m in lora_layers)


def test_consistency_gradients_reach_only_lora_parameters(tiny_model_factory, batches, tmp_path):
    from higgs_lora.model.load import apply_lora
    from higgs_lora.train.loss import consistency_loss

    model = apply_lora(tiny_model_factory(), 4, 8, 0.0)
    for name, p in model.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(p, std=0.05)  # a trained adapter: KL > 0 and a real gradient
    trainer = _consistency_trainer(model, tmp_path)
    model.train()
    outputs = model(**batches[2])
    kl = trainer._consistency(model, batches[2], outputs)
    assert float(kl) > 0
    kl.backward()
    got = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    assert got and all("lora_" in n for n in got)
    # every trainable parameter on the audio path gets one (the text head plays no part in audio logits)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert set(got) == {n for n in trainable if "text_lm_head" not in n}
    assert any(g.abs().sum() > 0 for n, g in got.items() if ".audio_mlp." in n)
    # The base forward is a constant (no grad): the same KL against precomputed base logits gives the
    # same gradient, so nothing flows through the base pass.
    model.zero_grad()
    with torch.no_grad(), model.disable_adapter():
        base = model(**batches[2]).audio_logits
    assert not base.requires_grad
    consistency_loss(model(**batches[2]).audio_logits, base, batches[2]["label_audio_ids"]).backward()
    for name, grad in got.items():
        torch.testing.assert_close(dict(model.named_parameters())[name].grad, grad, msg=name)


def test_consistency_needs_a_peft_model(model, batches, tmp_path):
    trainer = _consistency_trainer(model, tmp_path)
    with pytest.raises(ValueError, match="LoRA"):
        trainer.compute_loss(model, batches[0])


def _stepped_trainer(tmp_path):
    """A trainer whose AdamW has taken a step, so its saved state holds tensors (a fresh one's has none)."""
    args = TrainingArguments(output_dir=str(tmp_path), report_to=[], use_cpu=True, disable_tqdm=True)
    trainer = HiggsAudioTrainer(model=torch.nn.Linear(3, 2), args=args)
    trainer.create_optimizer_and_scheduler(num_training_steps=4)
    for p in trainer.model.parameters():
        p.grad = torch.ones_like(p)
    trainer.optimizer.step()
    return trainer


def test_optimizer_state_resumes_under_cpu_ddp_where_the_device_is_an_indexed_cpu(tmp_path, monkeypatch):
    """Under DDP on CPU accelerate's device is `cpu:0` and Trainer (world_size > 1) passes it to torch.load
    as map_location, which torch.load alone rejects: "don't know how to restore ... (tagged with cpu:0)"."""
    saved = _stepped_trainer(tmp_path)
    ckpt = tmp_path / "checkpoint-1"
    ckpt.mkdir()
    torch.save(saved.optimizer.state_dict(), ckpt / "optimizer.pt")
    torch.save(saved.lr_scheduler.state_dict(), ckpt / "scheduler.pt")

    resumed = HiggsAudioTrainer(model=torch.nn.Linear(3, 2), args=saved.args)
    resumed.create_optimizer_and_scheduler(num_training_steps=4)
    monkeypatch.setattr(TrainingArguments, "world_size", property(lambda self: 2))
    monkeypatch.setattr(TrainingArguments, "device", property(lambda self: torch.device("cpu", 0)))
    resumed._load_optimizer_and_scheduler(str(ckpt))
    loaded, expected = resumed.optimizer.state_dict()["state"], saved.optimizer.state_dict()["state"]
    assert loaded.keys() == expected.keys()
    for key in expected:
        assert loaded[key]["exp_avg"].device == torch.device("cpu")
        assert torch.equal(loaded[key]["exp_avg"], expected[key]["exp_avg"])


def test_numpy_rng_globals_are_allowed_for_the_rng_state_load_only(tmp_path):
    """rng_state.pth holds numpy's RNG state, which the weights-only unpickler rejects ("Unsupported global:
    numpy._core.multiarray._reconstruct") unless numpy's globals are allowed; they are, while Trainer reads
    that file, and not left allowed for every later torch.load."""
    import random

    import numpy as np

    numpy_globals = {getattr(np, "_core", np.core).multiarray._reconstruct, np.ndarray}
    np.random.seed(1)
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "cpu": torch.get_rng_state()}
    torch.save(state, tmp_path / "rng_state.pth")
    expected = np.random.random()
    np.random.seed(2)
    _stepped_trainer(tmp_path)._load_rng_state(str(tmp_path))
    assert np.random.random() == expected  # the numpy state was restored
    assert not numpy_globals & set(torch.serialization.get_safe_globals())
