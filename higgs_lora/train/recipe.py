"""LoRA fine-tuning recipe for Higgs Audio v2 voice cloning.

Features:
- canonical five-message ChatML data, validated up front (every bad sample listed, none dropped silently);
- the prompt built by `data.sample` (the same builder inference uses), labels on the target turn only;
- the collator built from the model config (`data.dataset.build_collator`), as the serve engine builds it;
- the shifted text + per-codebook audio loss (`train.loss`), stream EOS trained, reference masked;
- PEFT LoRA on attention, text FFN, DualFFN audio FFN and both heads (flags choose r/alpha/dropout/targets);
- transformers.Trainer: bf16 autocast on CUDA, gradient accumulation, DDP under torchrun,
  activation checkpointing by patching decoder layers, checkpoints + resume, TensorBoard,
  and OUTPUT_DIR/metrics.jsonl with one record per logged step.

Limits: batches mix samples of any length (no length bucketing yet); audio is encoded once in
each process before training (no on-disk code cache yet); the design's "consistency loss" is not
implemented; long-text chunking exists only at inference.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict
from pathlib import Path

import torch

from ..data.codes import load_codec
from ..data.dataset import DictCollator, VoiceCloningDataset, build_collator
from ..data.validate import load_samples
from ..eval.callback import eval_callbacks
from ..model.load import (
    apply_lora, count_parameters, default_device, enable_activation_checkpointing,
    load_model, load_tokenizer,
)
from .config import RUN_CONFIG, TrainConfig, read_run_config  # noqa: F401  (re-exported)
from .trainer import HiggsAudioTrainer, MetricsJsonlCallback, allow_checkpoint_rng_state

log = logging.getLogger(__name__)

def quick_test_overrides(cfg: TrainConfig) -> TrainConfig:
    """A few steps on a few samples: checks the environment (and the named model) end to end."""
    cfg.max_steps = 3
    cfg.batch_size = min(cfg.batch_size, 2)
    cfg.gradient_accumulation_steps = 1
    cfg.logging_steps = 1
    cfg.save_steps = 10**9
    cfg.dataloader_num_workers = 0
    return cfg


def train(cfg: TrainConfig) -> Path:
    """Run training; returns the output folder holding the final adapter (PEFT layout)."""
    from transformers import TrainingArguments, set_seed

    if cfg.quick_test:
        cfg = quick_test_overrides(cfg)
    set_seed(cfg.seed)
    out = Path(cfg.output_dir)
    on_cuda = default_device() == "cuda"
    # Under torchrun each process owns GPU LOCAL_RANK; the codec must not pile onto GPU 0.
    device = f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}" if on_cuda else "cpu"
    bf16 = bool(cfg.mixed_precision and on_cuda and torch.cuda.is_bf16_supported())

    samples = load_samples(cfg.train_data, cfg.system_prompt)
    if cfg.quick_test:
        samples = samples[: max(2, cfg.batch_size)]
    tokenizer = load_tokenizer(cfg.base_model)
    # Under torchrun, Trainer moves the model to this process's GPU; load on CPU first then.
    model = load_model(cfg.base_model, device="cpu", dtype=torch.bfloat16 if bf16 else torch.float32)
    model.config.use_cache = False
    codec = load_codec(cfg.audio_tokenizer, device=device)
    dataset = VoiceCloningDataset(samples, tokenizer, codec, num_codebooks=model.config.audio_num_codebooks)
    del codec  # the codec's GPU memory is not needed while training
    collator = DictCollator(build_collator(model.config))

    model = apply_lora(model, cfg.lora_r, cfg.lora_alpha, cfg.lora_dropout, cfg.lora_targets)
    if cfg.use_gradient_checkpointing:
        enable_activation_checkpointing(model)
    trainable, total = count_parameters(model)
    print(f"trainable params: {trainable:,} / {total:,} ({100 * trainable / total:.2f}%)")

    args = TrainingArguments(
        output_dir=str(out),
        per_device_train_batch_size=cfg.batch_size,
        gradient_accumulation_steps=cfg.gradient_accumulation_steps,
        learning_rate=cfg.learning_rate,
        num_train_epochs=cfg.num_epochs,
        max_steps=cfg.max_steps,
        warmup_ratio=cfg.warmup_ratio,
        weight_decay=cfg.weight_decay,
        max_grad_norm=cfg.max_grad_norm,
        lr_scheduler_type="cosine",
        bf16=bf16,
        logging_steps=cfg.logging_steps,
        logging_dir=str(out / "runs"),
        save_strategy="steps",
        save_steps=cfg.save_steps,
        save_total_limit=cfg.save_total_limit,
        dataloader_num_workers=cfg.dataloader_num_workers,
        dataloader_pin_memory=on_cuda,
        remove_unused_columns=False,  # the collator's keys are the model's inputs
        ddp_find_unused_parameters=False,  # left unset, Trainer passes True for a PeftModel
        report_to=[cfg.report_to] if cfg.report_to != "none" else [],
        seed=cfg.seed,
        disable_tqdm=False,
    )
    trainer = HiggsAudioTrainer(
        model=model,
        args=args,
        train_dataset=dataset,
        data_collator=collator,
        callbacks=[MetricsJsonlCallback(out / "metrics.jsonl"), *eval_callbacks(cfg, tokenizer)],
        text_loss_weight=cfg.text_loss_weight,
        audio_loss_weight=cfg.audio_loss_weight,
    )
    allow_checkpoint_rng_state()
    trainer.train(resume_from_checkpoint=cfg.resume_from_checkpoint)
    trainer.save_model(str(out))  # PEFT adapter: adapter_config.json + adapter_model.safetensors
    if trainer.is_world_process_zero():
        tokenizer.save_pretrained(out)
        (out / RUN_CONFIG).write_text(json.dumps(asdict(cfg), indent=2, ensure_ascii=False), encoding="utf-8")
    return out

