"""train.summary: the start block (from Trainer's own schedule) and the end block, rank 0 only."""

from types import SimpleNamespace

import pytest
from transformers import TrainerControl, TrainerState

from higgs_lora.train.summary import (
    RunFacts,
    StartSummaryCallback,
    end_block,
    is_rank_zero,
    start_block,
    steps_per_epoch,
)

FACTS = RunFacts(
    train_data="data/train.json",
    output_dir="checkpoints/run",
    samples=1000,
    skipped=0,
    target_hours=2.5,
    reference_hours=1.25,
    speakers=12,
    eval_samples=50,
    eval_how="by speaker: 1 of 12",
    eval_steps=100,
    precision="bf16 autocast",
    save_steps=500,
    save_total_limit=2,
    lora="LoRA r=64 alpha=128",
    trainable=1_000,
    total=10_000,
)


def test_start_block_states_the_effective_batch_and_schedule():
    text = start_block(
        FACTS, per_device=4, accumulation=4, processes=8, steps_epoch=7, max_steps=21, learning_rate=5e-4
    )
    assert "4 per device x 4 accumulation x 8 processes = 128 samples per step" in text
    assert "7 steps per epoch; 21 steps = 3.00 epochs" in text
    assert "1,000 samples to train on, 0 skipped" in text and "2.50 h of target audio" in text and "12 speakers" in text
    assert "50 samples (5%), eval_loss every 100 steps" in text
    assert "bf16 autocast" in text and "at the last step only, keeping 2" in text and "checkpoints/run" in text
    longer = start_block(FACTS, per_device=4, accumulation=4, processes=8, steps_epoch=7, max_steps=2100)
    assert "every 500 steps, keeping 2" in longer  # only a run longer than --save_steps checkpoints along the way
    assert "10.00%" in text and "consistency" not in text and "resuming" not in text
    text = start_block(
        RunFacts(train_data="d", output_dir="o", samples=1, consistency_loss_weight=0.1),
        per_device=1,
        accumulation=1,
        processes=1,
        steps_epoch=1,
        max_steps=5,
        resumed_at=3,
    )
    assert "1 sample to train on" in text and "1 per device x 1 accumulation x 1 process = 1 samples" in text
    assert "one extra forward" in text and "at step 3 of 5" in text and "held out" not in text
    budget = start_block(
        RunFacts(train_data="d", output_dir="o", samples=8, max_tokens_per_batch=16000),
        per_device=4,
        accumulation=2,
        processes=2,
        steps_epoch=1,
        max_steps=1,
    )
    assert (
        "up to 16,000 padded tokens per device (length-aware; --batch_size ignored) x 2 accumulation x 2 processes"
        in budget
        and "samples per step" not in budget
    )


def test_start_block_says_how_many_layers_are_checkpointed():
    def row(layers, of=28):
        facts = RunFacts(train_data="d", output_dir="o", samples=1, gradient_checkpointing=layers, decoder_layers=of)
        text = start_block(facts, per_device=1, accumulation=1, processes=1, steps_epoch=1, max_steps=1)
        return next(line for line in text.splitlines() if "activation checkpointing" in line)

    assert row(0).endswith("activation checkpointing off")
    assert row(12).endswith("activation checkpointing on (12 of 28 decoder layers)")
    assert row(28).endswith("activation checkpointing on (all 28 decoder layers)")


def test_steps_per_epoch_counts_like_trainer():
    assert steps_per_epoch(10, 4) == 2  # the remainder micro-batches do not count towards max_steps
    assert steps_per_epoch(3, 4) == 1


def test_end_block_reports_final_and_best_loss_and_the_next_commands():
    history = [
        {"step": 1, "loss": 3.0},
        {"step": 2, "loss": 2.0},
        {"step": 2, "eval_loss": 2.5},
        {"step": 3, "loss": 2.2},
        {"step": 3, "eval_loss": 2.6},
        {"step": 3, "train_runtime": 9.0},
    ]
    text = end_block(
        history,
        steps=3,
        seconds=3725,
        output_dir="ckpt/my run",
        base_model="tiny",
        audio_tokenizer="tiny",
        data_for_infer="d.json",
    )
    assert "3 in 1h 02m 05s" in text
    assert "final 2.2000, best 2.0000 (step 2)" in text
    assert "eval_loss  final 2.6000, best 2.5000 (step 2)" in text
    assert "higgs-lora merge --base_model tiny --lora_path 'ckpt/my run' --output_path 'ckpt/my run-merged'" in text
    assert (
        "higgs-lora infer --chatml_file d.json --output_dir 'ckpt/my run/samples' --model_path tiny "
        "--lora_path 'ckpt/my run'" in text
    )
    assert (
        "higgs-lora eval --data d.json --model_path tiny --lora_path 'ckpt/my run' --audio_tokenizer tiny "
        "--output_dir 'ckpt/my run/eval'" in text
    )
    no_eval = end_block(
        history[:2], steps=2, seconds=5, output_dir="o", base_model="b", audio_tokenizer="t", data_for_infer="d"
    )
    assert "eval_loss" not in no_eval and "2 in 5s" in no_eval


def test_start_callback_prints_once_on_rank_zero_with_trainers_numbers():
    printed = []
    callback = StartSummaryCallback(FACTS, printer=lambda text, **kw: printed.append(text))
    args = SimpleNamespace(
        per_device_train_batch_size=2, gradient_accumulation_steps=2, world_size=2, learning_rate=1e-4
    )
    state = TrainerState(max_steps=6)
    state.is_world_process_zero = False
    callback.on_train_begin(args, state, TrainerControl(), train_dataloader=[0] * 5)
    assert printed == []
    state.is_world_process_zero = True
    callback.on_train_begin(args, state, TrainerControl(), train_dataloader=[0] * 5)
    assert len(printed) == 1
    assert "2 per device x 2 accumulation x 2 processes = 8 samples per step" in printed[0]
    assert "2 steps per epoch; 6 steps = 3.00 epochs" in printed[0]


@pytest.mark.parametrize("env, zero", [({}, True), ({"RANK": "0"}, True), ({"RANK": "1"}, False)])
def test_is_rank_zero(monkeypatch, env, zero):
    monkeypatch.delenv("RANK", raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    assert is_rank_zero() is zero
