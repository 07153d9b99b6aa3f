"""LoRA fine-tuning recipe for Higgs Audio v2 voice cloning: `train(cfg)`, one readable flow.

Features, in the order they run:
- preflight (`train.preflight`): output folder, disk space, data file, model and codec reachable (pinned hub
  revisions), all before any weights load; `latest` resume and the existing-run rule (`train.checkpoints`);
- validation up front with reason codes; `--skip_invalid` drops and lists bad samples, else the run stops
  (`train.faults`); `--max_audio_seconds`; a held-out split by speaker (`train.eval_split`);
- the prompt built by `data.sample` (the same builder inference uses), labels on the target turn only, the
  text front-end (`data.text`) applied where samples load, as at inference;
- codes from the on-disk code cache (`data.cache`, default OUTPUT_DIR/code_cache), built first and sharded
  across ranks; `--max_tokens_per_batch` turns on length-aware batches (`data.sampler`);
- the collator built from the model config (`data.collator.build_collator`), as the serve engine builds it;
- PEFT LoRA on attention, text FFN, DualFFN audio FFN and both heads; the precision scheme
  (`model.precision`: bf16 weights + autocast, fp32 LoRA); a memory check of the longest batch that turns on
  activation checkpointing or stops (`train.memory_guard`);
- transformers.Trainer (`train.trainer`): the shifted text + per-codebook audio loss and the optional
  consistency loss (`train.loss`), gradient accumulation, DDP under torchrun, NaN/inf steps skipped, SIGTERM
  checkpoints, staged (all-or-nothing) checkpoints, metrics.jsonl + TensorBoard + compact console
  (`train.metrics`), held-out loss, samples during training (`eval.callback`), start and end summaries
  printed once by rank 0 (`train.summary`);
- the adapter in PEFT layout, the run settings with weight provenance, and the folder's model card.

Limits: the codec sits on each rank's GPU while the code cache is built (the model waits on the CPU; the codec is freed
before the first step); DeepSpeed/FSDP are passed to Trainer untested; nothing here was run on a GPU in
the session that wrote it (see README, "GPU check").
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict
from pathlib import Path

from ..data.cache_sharding import start_distributed
from ..data.codes import load_codec
from ..data.collator import DictCollator, build_collator
from ..data.dataset import VoiceCloningDataset
from ..data.skipped import write_skipped
from ..data.whisper import encodes_whisper
from ..eval.callback import eval_callbacks
from ..model.load import (
    apply_lora,
    check_attention,
    count_parameters,
    default_device,
    enable_activation_checkpointing,
    load_model,
    load_tokenizer,
)
from ..model.precision import resolve_precision
from ..model.provenance import provenance
from . import checkpoints
from . import heads as labelled_heads
from .config import RUN_CONFIG, TrainConfig, read_run_config  # noqa: F401  (re-exported)
from .eval_split import held_out, write_held_out
from .faults import NonFiniteGuard, StopOnSignal, TrainingInterrupted, select_samples
from .heads import LabelledCollator
from .memory_guard import check_memory, drop_long_samples
from .metrics import CompactProgressCallback
from .model_card import adapter_card
from .preflight import preflight
from .summary import RunFacts, StartSummaryCallback, audio_hours, end_block, is_rank_zero, quiet_known_notices
from .trainer import HiggsAudioTrainer, MetricsJsonlCallback


def quick_test_overrides(cfg: TrainConfig) -> TrainConfig:
    """A few steps on a few samples: checks the environment (and the named model) end to end."""
    cfg.max_steps = 3
    cfg.batch_size = min(cfg.batch_size, 2)
    cfg.gradient_accumulation_steps = 1
    cfg.logging_steps = 1
    cfg.save_steps = 10**9
    cfg.dataloader_num_workers = 0
    return cfg


def train(
    cfg: TrainConfig,
    model=None,
    tokenizer=None,
    callbacks=(),
    on_stage=None,
    *,
    codec=None,
    collator_factory=build_collator,
    loss_fn=None,
) -> Path:
    """Run training; returns the output folder holding the final adapter (PEFT layout).

    `model`/`tokenizer`: an already built base model (in the precision's weights dtype) and its
    tokenizer instead of loading `cfg.base_model` (gpu-check's random-weight released shape);
    `callbacks`: extra TrainerCallbacks (gpu-check's step timer); `on_stage(name)` is told each stage as
    it starts (data, model, codec, training step, save); `codec`: an already loaded codec for
    `cfg.audio_tokenizer` (check-alignment's, which answers from the codes it already computed).
    `collator_factory` (in place of `data.collator.build_collator`, same signature) and `loss_fn` (in place of
    `train.loss.compute_loss`, over upstream's full logits: the heads of `train.heads` are then left
    out): for tests only, the seams through which tests/checks/ inject a broken collator or loss
    to show check-alignment catching it; users never set them. Raises TrainingInterrupted after a SIGTERM (a
    checkpoint was saved), TrainingAborted on faults.
    """
    import time

    from transformers import TrainingArguments, set_seed
    from transformers.trainer_callback import ProgressCallback

    stage = on_stage or (lambda name: None)
    quiet_known_notices()
    if cfg.quick_test:
        cfg = quick_test_overrides(cfg)
    out = Path(cfg.output_dir)
    # Folder checks, disk space, data and model reachability: all before any weights are loaded.
    resume = checkpoints.resolve_resume(cfg.resume_from_checkpoint, out)
    if resume is not None and (done := checkpoints.finished_step(resume, cfg.max_steps, cfg.num_epochs)) is not None:
        raise checkpoints.RunAlreadyFinished(
            f"{out}: this run already finished at step {done} ({Path(resume).name}); nothing was changed. To train "
            f"further raise --max_steps (or --num_epochs) and resume again; for a new run use --overwrite_output_dir"
        )
    checkpoints.check_output_dir(out, cfg.overwrite_output_dir, resuming=resume is not None)
    guard = NonFiniteGuard(cfg.max_nonfinite_steps)
    preflight(cfg, stage, check_model=model is None)
    stage("data")
    samples, file_indices, total = select_samples(
        cfg.train_data,
        cfg.system_prompt,
        cfg.skip_invalid,
        out,
        text_normalization=cfg.text_normalization,
        workers=cfg.dataloader_num_workers,
    )
    if cfg.overwrite_output_dir and resume is None and is_rank_zero():
        checkpoints.clear_earlier_run(out)
    set_seed(cfg.seed)
    on_cuda = default_device() == "cuda"
    # Under torchrun each process owns GPU LOCAL_RANK; the codec must not pile onto GPU 0.
    device = f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}" if on_cuda else "cpu"
    precision = resolve_precision(cfg.mixed_precision, device)  # named in the start summary
    guard.check_gradients = precision.name != "fp16"  # fp16's loss scaler skips its own overflow steps
    cfg.mixed_precision = precision.name  # the run settings and the card say what ran, not "auto"
    check_attention(cfg.attn_implementation, device)  # before minutes of data preparation

    samples, file_indices = drop_long_samples(samples, cfg.max_audio_seconds, file_indices)
    skipped = total - len(samples)  # invalid (--skip_invalid) or longer than --max_audio_seconds
    if cfg.quick_test:
        samples, file_indices = samples[: max(2, cfg.batch_size)], file_indices[: max(2, cfg.batch_size)]
    split = held_out(samples, cfg.eval_data, cfg.eval_split, cfg.seed, cfg.system_prompt)
    kept = {id(s) for s in split.train}
    file_indices = [i for s, i in zip(samples, file_indices) if id(s) in kept]
    samples = split.train
    # Written out so the end summary can suggest scoring on voices the adapter never trained on.
    held_out_file = (
        str(write_held_out(split.eval, out)) if split.eval and not cfg.eval_data and is_rank_zero() else None
    )
    stage("model")
    tokenizer = tokenizer or load_tokenizer(cfg.base_model)
    # Under torchrun, Trainer moves the model to this process's GPU; load on CPU first then.
    base_by_name = model is None  # a caller's model object has no weights on disk to hash
    if model is None:
        model = load_model(
            cfg.base_model, device="cpu", dtype=precision.weights_dtype, attn_implementation=cfg.attn_implementation
        )
    model.config.use_cache = False
    stage("codec")
    start_distributed()  # under torchrun the ranks share out the code-cache build
    codec = codec or load_codec(cfg.audio_tokenizer, device=device)
    cache_options = dict(
        cache_dir=cfg.cache_dir or str(out / "code_cache"),
        require_cache=cfg.require_cache,
        skip_invalid=cfg.skip_invalid,
        max_bad_samples=cfg.max_bad_samples,
        with_waveforms=encodes_whisper(model.config),
        audio_tokenizer=cfg.audio_tokenizer,
    )
    dataset = VoiceCloningDataset(
        samples,
        tokenizer,
        codec,
        num_codebooks=model.config.audio_num_codebooks,
        data_path=cfg.train_data,
        **cache_options,
    )
    eval_dataset = (
        VoiceCloningDataset(
            split.eval,
            tokenizer,
            codec,
            num_codebooks=model.config.audio_num_codebooks,
            data_path=cfg.eval_data or cfg.train_data,
            **cache_options,
        )
        if split.eval
        else None
    )
    target_hours, reference_hours, speakers = audio_hours(dataset, dataset.samples, codec.tps)
    del codec  # the codec's GPU memory is not needed while training
    # The dataset numbers samples by their place in the list it got; the file's numbering is what a
    # user can look up (validation, --max_audio_seconds and the split may have dropped earlier ones).
    for entry in dataset.skipped:
        entry["index"] = file_indices[entry["index"]]
    file_indices = [file_indices[i] for i in dataset.source_indices]  # what the dataset kept
    write_skipped(dataset, out)
    # The shared collator plus the label counts that let the heads run only where a label is (train.heads),
    # and the merged layout that spares the forward its device syncs (train.layout, train.decoder).
    collator = DictCollator(collator_factory(model.config, encode_whisper_embed=cfg.encode_whisper_embed or None))
    # A test's own loss gets upstream's full logits (an unshifted loss needs every position); users' runs the heads.
    labelled = loss_fn is None and labelled_heads.supported(model.config)
    collator = LabelledCollator(collator, model.config) if labelled else collator

    model = precision.prepare(apply_lora(model, cfg.lora_r, cfg.lora_alpha, cfg.lora_dropout, cfg.lora_targets))
    if labelled:
        labelled_heads.install(model)
    # Before any step: the longest batch must fit (checkpointing turned on, or a clear stop, if not).
    checkpointing = check_memory(cfg, model.config, dataset, device, precision.weights_dtype.itemsize, file_indices)
    cfg.use_gradient_checkpointing = "on" if checkpointing else "off"  # the run settings say what ran
    cfg.checkpointed_layers = enable_activation_checkpointing(model, checkpointing)
    trainable, parameters = count_parameters(model)
    eval_steps = cfg.eval_steps or cfg.save_steps
    facts = RunFacts(
        train_data=cfg.train_data,
        output_dir=str(out),
        samples=len(dataset),
        skipped=skipped + len(samples) - len(dataset),
        target_hours=target_hours,
        reference_hours=reference_hours,
        speakers=speakers,
        eval_samples=len(split.eval),
        eval_how=split.how,
        eval_steps=eval_steps,
        precision=precision.describe(),
        gradient_checkpointing=checkpointing,
        decoder_layers=model.config.text_config.num_hidden_layers,
        save_steps=cfg.save_steps,
        save_total_limit=cfg.save_total_limit,
        lora=f"LoRA r={cfg.lora_r} alpha={cfg.lora_alpha} dropout={cfg.lora_dropout}",
        trainable=trainable,
        total=parameters,
        consistency_loss_weight=cfg.consistency_loss_weight,
        max_tokens_per_batch=cfg.max_tokens_per_batch,
        backend=f"DeepSpeed {cfg.deepspeed}" if cfg.deepspeed else (f"FSDP {cfg.fsdp}" if cfg.fsdp else ""),
    )

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
        **precision.training_arguments(),
        logging_steps=cfg.logging_steps,
        # Trainer's filter reads every micro-step's loss on the host (a device sync each); a non-finite
        # step is the NaN guard's business (it skips it and logs skipped_nonfinite).
        logging_nan_inf_filter=False,
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
        callbacks=[
            MetricsJsonlCallback(out / "metrics.jsonl"),
            StartSummaryCallback(facts),
            guard,
            stop := StopOnSignal(),
            *eval_callbacks(cfg, tokenizer),
            *callbacks,
        ],
        text_loss_weight=cfg.text_loss_weight,
        audio_loss_weight=cfg.audio_loss_weight,
        consistency_loss_weight=cfg.consistency_loss_weight,
        max_tokens_per_batch=cfg.max_tokens_per_batch,
        loss_fn=loss_fn,
    )
    trainer.remove_callback(ProgressCallback)  # raw dicts on the console: compact lines instead
    trainer.add_callback(CompactProgressCallback)
    trainer.nonfinite_guard = guard
    stage("training step")
    checkpoints.remove_stale_staging(out)
    started = time.monotonic()
    with stop.installed():
        trainer.train(resume_from_checkpoint=resume)
    if stop.stopped_at is not None and stop.stopped_at < trainer.state.max_steps:
        raise TrainingInterrupted(
            f"stopped by {stop.signal_name} after step {stop.stopped_at}; checkpoint saved to {out / f'checkpoint-{stop.stopped_at}'}"
            f"; continue with --resume_from_checkpoint latest --output_dir {out}",
            str(out / f"checkpoint-{stop.stopped_at}"),
        )
    if eval_dataset is not None and trainer.state.global_step % eval_steps:
        trainer.evaluate()  # the final adapter's held-out loss, for the end summary and metrics.jsonl
    stage("save")
    trainer.save_model(str(out))  # PEFT adapter: adapter_config.json + adapter_model.safetensors
    if trainer.is_world_process_zero():
        tokenizer.save_pretrained(out)
        # What the adapter was trained on, hashes included: merge/infer warn when served on other weights.
        base = provenance(cfg.base_model) if base_by_name else {"name": cfg.base_model, "weights_sha256": None}
        run = asdict(cfg) | {
            "provenance": {"base_model": base, "audio_tokenizer": provenance(cfg.audio_tokenizer, "codec")}
        }
        (out / RUN_CONFIG).write_text(json.dumps(run, indent=2, ensure_ascii=False), encoding="utf-8")
        losses = [r["loss"] for r in trainer.state.log_history if "loss" in r]
        (out / "README.md").write_text(
            adapter_card(run, str(out), trainer.state.global_step, len(dataset), losses[-1] if losses else None),
            encoding="utf-8",
        )
        print(
            end_block(
                trainer.state.log_history,
                steps=trainer.state.global_step,
                seconds=time.monotonic() - started,
                output_dir=str(out),
                base_model=cfg.base_model,
                audio_tokenizer=cfg.audio_tokenizer,
                data_for_infer=cfg.eval_data or held_out_file or cfg.train_data,
                trained_on=not (cfg.eval_data or held_out_file),
            ),
            flush=True,
        )
    return out
