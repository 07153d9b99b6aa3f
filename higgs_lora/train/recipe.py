"""LoRA fine-tuning recipe for Higgs Audio v2 voice cloning.

Features:
- canonical five-message ChatML data, validated up front (every bad sample listed, none dropped silently);
- the prompt built by `data.sample` (the same builder inference uses), labels on the target turn only;
- the collator built from the model config (`data.dataset.build_collator`), as the serve engine builds it;
- the shifted text + per-codebook audio loss (`train.loss`), stream EOS trained, reference masked;
- PEFT LoRA on attention, text FFN, DualFFN audio FFN and both heads (flags choose r/alpha/dropout/targets);
- transformers.Trainer: bf16 autocast on CUDA, gradient accumulation, DDP under torchrun,
  activation checkpointing by patching decoder layers, checkpoints + resume, TensorBoard,
  and OUTPUT_DIR/metrics.jsonl with one record per logged step;
- held-out eval_loss (--eval_data or a by-speaker --eval_split), the optional consistency loss
  (KL to the adapter-off base model), start and end summaries printed once by rank 0.

Limits: batches mix samples of any length (no length bucketing yet); audio is encoded once in
each process before training (no on-disk code cache yet); long-text chunking exists only at inference.
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
from ..model.load import (
    apply_lora, count_parameters, default_device, enable_activation_checkpointing,
    load_model, load_tokenizer,
)
from .config import RUN_CONFIG, TrainConfig, read_run_config  # noqa: F401  (re-exported)
from .eval_split import held_out
from .metrics import CompactProgressCallback
from .summary import RunFacts, StartSummaryCallback, audio_hours, end_block
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
    import time

    from transformers import TrainingArguments, set_seed
    from transformers.trainer_callback import ProgressCallback

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
    split = held_out(samples, cfg.eval_data, cfg.eval_split, cfg.seed, cfg.system_prompt)
    samples = split.train
    tokenizer = load_tokenizer(cfg.base_model)
    # Under torchrun, Trainer moves the model to this process's GPU; load on CPU first then.
    model = load_model(cfg.base_model, device="cpu", dtype=torch.bfloat16 if bf16 else torch.float32)
    model.config.use_cache = False
    codec = load_codec(cfg.audio_tokenizer, device=device)
    dataset = VoiceCloningDataset(samples, tokenizer, codec, num_codebooks=model.config.audio_num_codebooks)
    eval_dataset = (VoiceCloningDataset(split.eval, tokenizer, codec, num_codebooks=model.config.audio_num_codebooks)
                    if split.eval else None)
    target_hours, reference_hours, speakers = audio_hours(dataset, samples, codec.tps)
    del codec  # the codec's GPU memory is not needed while training
    collator = DictCollator(build_collator(model.config))

    model = apply_lora(model, cfg.lora_r, cfg.lora_alpha, cfg.lora_dropout, cfg.lora_targets)
    if cfg.use_gradient_checkpointing:
        enable_activation_checkpointing(model)
    trainable, total = count_parameters(model)
    eval_steps = cfg.eval_steps or cfg.save_steps
    facts = RunFacts(
        train_data=cfg.train_data, output_dir=str(out), samples=len(samples), target_hours=target_hours,
        reference_hours=reference_hours, speakers=speakers, eval_samples=len(split.eval), eval_how=split.how,
        eval_steps=eval_steps, precision="bf16 autocast" if bf16 else "fp32",
        gradient_checkpointing=cfg.use_gradient_checkpointing, save_steps=cfg.save_steps,
        save_total_limit=cfg.save_total_limit, lora=f"LoRA r={cfg.lora_r} alpha={cfg.lora_alpha} "
        f"dropout={cfg.lora_dropout}", trainable=trainable, total=total,
        consistency_loss_weight=cfg.consistency_loss_weight,
        backend=f"DeepSpeed {cfg.deepspeed}" if cfg.deepspeed else (f"FSDP {cfg.fsdp}" if cfg.fsdp else ""))

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
        eval_strategy="steps" if eval_dataset is not None else "no",
        eval_steps=eval_steps,
        per_device_eval_batch_size=cfg.batch_size,
        prediction_loss_only=True,
        label_names=["label_ids", "label_audio_ids"],  # without them Trainer computes no eval loss
        deepspeed=cfg.deepspeed,
        fsdp=cfg.fsdp,
    )
    trainer = HiggsAudioTrainer(
        model=model,
        args=args,
        train_dataset=dataset,
        eval_dataset=eval_dataset,
        data_collator=collator,
        callbacks=[MetricsJsonlCallback(out / "metrics.jsonl"), StartSummaryCallback(facts)],
        text_loss_weight=cfg.text_loss_weight,
        audio_loss_weight=cfg.audio_loss_weight,
        consistency_loss_weight=cfg.consistency_loss_weight,
    )
    trainer.remove_callback(ProgressCallback)  # raw dicts on the console: compact lines instead
    trainer.add_callback(CompactProgressCallback)
    allow_checkpoint_rng_state()
    started = time.monotonic()
    trainer.train(resume_from_checkpoint=cfg.resume_from_checkpoint)
    if eval_dataset is not None and trainer.state.global_step % eval_steps:
        trainer.evaluate()  # the final adapter's held-out loss, for the end summary and metrics.jsonl
    trainer.save_model(str(out))  # PEFT adapter: adapter_config.json + adapter_model.safetensors
    if trainer.is_world_process_zero():
        tokenizer.save_pretrained(out)
        (out / RUN_CONFIG).write_text(json.dumps(asdict(cfg), indent=2, ensure_ascii=False), encoding="utf-8")
        print(end_block(trainer.state.log_history, steps=trainer.state.global_step, seconds=time.monotonic() - started,
                        output_dir=str(out), base_model=cfg.base_model, audio_tokenizer=cfg.audio_tokenizer,
                        data_for_infer=cfg.eval_data or cfg.train_data), flush=True)
    return out

