"""Samples during training: generated with the weights being trained, logged, model and RNG left as found."""

import json

import torch
from transformers import TrainerState, TrainingArguments

from higgs_lora.eval import callback as cb
from higgs_lora.eval.callback import SampleEvalCallback
from higgs_lora.eval.metrics import Scorers
from higgs_lora.model.load import apply_lora
from higgs_lora.train.recipe import TrainConfig, train


def _event_tags(folder):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    tags = {"audio": set(), "scalars": set()}
    for events in folder.glob("events.out.tfevents.*"):
        acc = EventAccumulator(str(events), size_guidance={"audio": 0, "scalars": 0})
        acc.Reload()
        tags["audio"] |= set(acc.Tags()["audio"])
        tags["scalars"] |= set(acc.Tags()["scalars"])
    return tags


def test_callback_samples_logs_and_restores_the_model(
    tiny_model_factory, tiny_tokenizer, sample_samples, tmp_path, fakes
):
    FakeEncoder, FakeASR = fakes
    model = apply_lora(tiny_model_factory(), 4, 8, 0.0, ["self_attn.q_proj"])
    model.train()
    callback = SampleEvalCallback(
        sample_samples[:2],
        tiny_tokenizer,
        "tiny",
        tmp_path,
        every=2,
        max_new_tokens=20,
        scorers=Scorers(FakeEncoder(), FakeASR()),
    )
    args = TrainingArguments(output_dir=str(tmp_path), logging_dir=str(tmp_path / "runs"), report_to=[])
    state = TrainerState(global_step=1)
    callback.on_step_end(args, state, None, model=model)
    assert not (tmp_path / "metrics.jsonl").exists()  # not a multiple of `every`

    state.global_step = 2
    rng = torch.get_rng_state()
    callback.on_step_end(args, state, None, model=model)
    assert model.training and all(m.training for m in model.modules())
    assert torch.equal(torch.get_rng_state(), rng)

    record = json.loads((tmp_path / "metrics.jsonl").read_text().splitlines()[-1])
    assert record["step"] == 2
    assert {"eval_sim", "eval_wer", "eval_cer", "eval_duration_ratio", "eval_eos_rate", "eval_seconds"} <= set(record)
    assert sorted(p.name for p in (tmp_path / "eval_samples" / "step_000002").iterdir()) == ["00.wav", "01.wav"]
    callback.on_train_end(args, state, None)
    tags = _event_tags(tmp_path / "runs")
    assert {"eval/sim", "eval/wer", "eval/eos_rate"} <= tags["scalars"]
    assert {"eval_reference/00", "eval_target/01"} <= tags["audio"]

    # Other processes never generate.
    state.global_step, state.is_world_process_zero = 4, False
    callback.on_step_end(args, state, None, model=model)
    assert not (tmp_path / "eval_samples" / "step_000004").exists()


def test_training_with_eval_every_steps(sample_data_path, tmp_path, monkeypatch, fakes):
    """The recipe registers the callback: a 2-step run with --eval_every_steps 1 logs two evaluations."""
    FakeEncoder, FakeASR = fakes
    monkeypatch.setattr(cb, "_optional_scorers", lambda: Scorers(FakeEncoder(), FakeASR()))
    cfg = TrainConfig(
        train_data=str(sample_data_path),
        output_dir=str(tmp_path / "out"),
        base_model="tiny",
        audio_tokenizer="tiny",
        batch_size=2,
        gradient_accumulation_steps=1,
        max_steps=2,
        logging_steps=1,
        save_steps=100,
        dataloader_num_workers=0,
        eval_every_steps=1,
        eval_samples=1,
        eval_data=str(sample_data_path),
        eval_max_new_tokens=16,
        report_to="none",
    )
    out = train(cfg)
    records = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if "eval_sim" in r] == [1, 2]
    assert [r["step"] for r in records if "loss" in r] == [1, 2]
    assert (out / "eval_samples" / "step_000002" / "00.wav").is_file()


def test_no_callback_unless_asked():
    assert cb.eval_callbacks(TrainConfig(train_data="unused"), None) == []


def test_callback_samples_go_through_the_runs_text_front_end(sample_data_path, sample_samples, tmp_path):
    """The prompts the callback builds use the training run's --text_normalization, as training does."""
    cfg = TrainConfig(
        train_data=str(sample_data_path),
        eval_data=str(sample_data_path),
        eval_every_steps=1,
        eval_samples=1,
        text_normalization="whitespace,tatweel,strip_diacritics",
        output_dir=str(tmp_path / "o"),
    )
    (callback,) = cb.eval_callbacks(cfg, None)
    default = sample_samples[0]
    assert default.target_text == "الْجَوُّ جَمِيلٌ الْيَوْمَ."  # the default front-end keeps the diacritics
    assert callback.samples[0].target_text == "الجو جميل اليوم."
    assert callback.samples[0].ref_text == "مرحبا، كيف حالك؟"


def test_callback_generates_with_the_dynamic_cache(
    tiny_model_factory, tiny_tokenizer, sample_samples, tmp_path, fakes, monkeypatch
):
    """On CUDA "auto" would build static caches and capture CUDA graphs on the model being trained at
    every evaluation; the callback asks for the dynamic cache whatever the device."""
    from higgs_lora.infer import engine

    FakeEncoder, FakeASR = fakes
    modes = []
    original = engine.VoiceCloner.__init__

    def spy(self, *args, **kwargs):
        original(self, *args, **kwargs)
        modes.append((kwargs.get("cache", "auto"), self.cache_mode, self.cuda_graphs))

    monkeypatch.setattr(engine.VoiceCloner, "__init__", spy)
    model = apply_lora(tiny_model_factory(), 4, 8, 0.0, ["self_attn.q_proj"])
    callback = SampleEvalCallback(
        sample_samples[:1],
        tiny_tokenizer,
        "tiny",
        tmp_path,
        every=1,
        max_new_tokens=8,
        tensorboard=False,
        scorers=Scorers(FakeEncoder(), FakeASR()),
    )
    callback.evaluate(model, 1)
    assert modes == [("dynamic", "dynamic", False)]
    assert not model.get_base_model().decode_graph_runners
