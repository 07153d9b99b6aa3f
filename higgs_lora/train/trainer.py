"""transformers.Trainer with the shifted Higgs Audio loss, the consistency loss and loss-part logging."""

from __future__ import annotations

import functools
import os
from pathlib import Path

import numpy as np
import torch
from transformers import Trainer

from . import checkpoints
from .heads import LabelledLogits
from .loss import compute_loss, consistency_loss
from .metrics import (  # noqa: F401  (MetricsJsonlCallback re-exported)
    LossMeter,
    MetricsJsonlCallback,
    ThroughputClock,
    memory_gb,
)


class HiggsAudioTrainer(Trainer):
    """Trainer whose loss is `train.loss.compute_loss` (+ the optional consistency loss); logs the loss parts,
    per-codebook losses, throughput and memory with `loss`, and the same parts with `eval_loss`."""

    def __init__(
        self,
        *args,
        text_loss_weight: float = 1.0,
        audio_loss_weight: float = 1.0,
        loss_fn=None,
        max_tokens_per_batch: int = 0,
        consistency_loss_weight: float = 0.0,
        **kwargs,
    ):
        super().__init__(*args, **kwargs)
        # Swappable only so check-alignment's tests can inject a broken loss (the module's compute_loss
        # is looked up now, so fault-injection tests can patch it too).
        self.loss_fn = loss_fn or compute_loss
        self.max_tokens_per_batch = max_tokens_per_batch
        self.text_loss_weight = text_loss_weight
        self.audio_loss_weight = audio_loss_weight
        self.consistency_loss_weight = consistency_loss_weight
        self._train_meter = LossMeter()
        self._eval_meter = LossMeter()
        self.add_callback(ThroughputClock(self._train_meter))
        self.nonfinite_guard = None  # faults.NonFiniteGuard: sees every training loss

    def get_train_dataloader(self):
        if not self.max_tokens_per_batch:
            return super().get_train_dataloader()
        from ..data.sampler import length_grouped_dataloader  # token-budget batches (see data/sampler.py)

        return length_grouped_dataloader(self.train_dataset, self.data_collator, self.args, self.max_tokens_per_batch)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        outputs = model(**inputs)
        parts = self.loss_fn(outputs, inputs["label_audio_ids"], self.text_loss_weight, self.audio_loss_weight)
        loss, consistency = parts.loss, None
        if self.consistency_loss_weight:
            consistency = self._consistency(model, inputs, outputs)
            loss = loss + self.consistency_loss_weight * consistency
        if model.training:
            if self.nonfinite_guard is not None:
                self.nonfinite_guard.note_loss(loss)
            self._train_meter.add(parts, consistency, inputs)
        else:  # weighted by batch size, as Trainer weights eval_loss
            self._eval_meter.add(parts, consistency, inputs, weight=float(inputs["input_ids"].shape[0]))
        return (loss, outputs) if return_outputs else loss

    def _consistency(self, model, inputs, outputs):
        """KL to the frozen base model: one extra forward with the adapter disabled, without grad."""
        peft_model = self.accelerator.unwrap_model(model)
        if not hasattr(peft_model, "disable_adapter"):
            raise ValueError(
                "--consistency_loss_weight needs a LoRA (PEFT) model: the base model is the adapter switched off"
            )
        with torch.no_grad(), peft_model.disable_adapter():
            base = peft_model(**inputs)
        if isinstance(outputs, LabelledLogits):  # both sides gathered at the same labelled columns
            return consistency_loss(outputs.audio_logits, base.audio_logits, outputs.audio_labels, shift=False)
        return consistency_loss(outputs.audio_logits, base.audio_logits, inputs["label_audio_ids"])

    def evaluation_loop(
        self, dataloader, description, prediction_loss_only=None, ignore_keys=None, metric_key_prefix="eval"
    ):
        self._eval_meter.reset()
        with self._train_meter.paused():
            result = super().evaluation_loop(
                dataloader, description, prediction_loss_only, ignore_keys, metric_key_prefix
            )
        prefix = metric_key_prefix
        if self._eval_meter:
            result.metrics.update(self._eval_meter.summary(self.args.device, prefix=f"{prefix}_", rates=False))
        return result

    def _load_optimizer_and_scheduler(self, checkpoint):
        _restore_indexed_cpu_locations()
        return super()._load_optimizer_and_scheduler(checkpoint)

    def _load_rng_state(self, checkpoint):
        """Trainer 4.46 reads rng_state.pth with plain `torch.load`, weights-only by default since torch 2.6;
        the numpy RNG state in it needs these numpy globals allowed, for this load only. Without them,
        resuming fails with "Unsupported global: numpy._core.multiarray._reconstruct"."""
        multiarray = getattr(np, "_core", np.core).multiarray
        with torch.serialization.safe_globals(
            [multiarray._reconstruct, np.ndarray, np.dtype, type(np.dtype(np.uint32))]
        ):
            return super()._load_rng_state(checkpoint)

    def log(self, logs: dict, *args, **kwargs) -> None:
        # Trainer logs the mean loss since the last log; add the parts averaged over the same micro-steps.
        if "loss" in logs and self._train_meter:
            logs.update(self._train_meter.summary(self.args.device))
            logs["memory_gb"] = memory_gb(self.args.device)
            if self.nonfinite_guard is not None:
                logs["skipped_nonfinite"] = self.nonfinite_guard.pop_log_count()
        super().log(logs, *args, **kwargs)

    def _save_checkpoint(self, model, trial, metrics=None):
        """Trainer's save, written under a staging name and renamed into place once complete.

        A crash mid-save (full disk, kill -9) leaves the earlier checkpoints as they were; rotation
        runs only after the new checkpoint is in place.
        """
        with self._train_meter.paused():
            self._save_staged(model, trial, metrics)

    def _save_staged(self, model, trial, metrics=None):
        run_dir = self._get_output_dir(trial=trial)
        step = self.state.global_step
        staging = checkpoints.staging_dir(run_dir, step)
        final = Path(run_dir) / f"checkpoint-{step}"
        distributed = torch.distributed.is_available() and torch.distributed.is_initialized()
        output_dir, self.args.output_dir = self.args.output_dir, str(staging)
        try:
            super()._save_checkpoint(model, trial, metrics)  # writes staging/checkpoint-N (each rank its RNG)
        finally:
            self.args.output_dir = output_dir
        if distributed:
            torch.distributed.barrier()  # every rank's files are in the staging folder
        if self.args.should_save:
            checkpoints.write_marker(staging / final.name, step)
            checkpoints.publish(staging / final.name, final)
            os.rmdir(staging)
            self._rotate_checkpoints(use_mtime=False, output_dir=run_dir)
        if distributed:
            torch.distributed.barrier()  # nobody resumes or saves again before the rename


@functools.cache
def _restore_indexed_cpu_locations() -> None:
    """Let torch.load restore storages to "cpu:<index>", which it otherwise rejects ("don't know how to
    restore data location ... (tagged with cpu:0)").

    Under DDP on CPU accelerate's device is `cpu:<rank>` (index 0 on every rank), and Trainer passes
    `args.device` as the optimizer state's map_location when world_size > 1. Every CPU index is the
    one CPU, so the storage stays as loaded. `register_package` is torch's hook for storage locations;
    the deserializer answers only "cpu:<digits>" (None for anything else), so no other load changes.
    Registered once per process.
    """

    def deserialize(storage, location: str):
        if location.startswith("cpu:") and location[4:].isdigit():
            return storage
        return None

    # priority 100: after torch's own (10 to 26 in torch 2.13), none of which answers "cpu:<index>".
    torch.serialization.register_package(100, lambda storage: None, deserialize)
