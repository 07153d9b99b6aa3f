"""`run_checks`: the parity checks, then the overfit (or, for `--lora_path`, the adapter check).

The training side (`TrainingSide`: dataset class, collator, loss, text front-end) is injectable so tests can
show each check catching a broken pipeline; the collator and loss reach the fit through recipe's test-only
hooks.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from typing import Callable

from ..data.collator import DictCollator, build_collator
from ..data.dataset import VoiceCloningDataset
from ..data.sample import CloneSample
from ..data.text import normalize_sample
from ..infer.inputs import InferenceInputs
from ..model.precision import Precision, resolve_precision
from ..train.config import TrainConfig
from ..train.loss import compute_loss
from .fit import check_overfit, fit_config, fit_settings
from .judge import check_adapter
from .parity import check_labels, check_prompt_parity
from .result import AlignmentReport


@dataclass
class TrainingSide:
    """What the trainer uses; defaults are the real pipeline, tests swap in broken parts."""

    dataset_cls: type = VoiceCloningDataset
    collator_factory: Callable = build_collator
    loss_fn: Callable = compute_loss
    normalize_text: bool = True  # the text front-end (data/text.py) on the training side


def run_checks(
    samples: list[CloneSample],
    model,
    tokenizer,
    codec,
    side: TrainingSide | None = None,
    overfit: bool = True,
    overfit_index: int = 0,
    max_steps: int | None = None,
    learning_rate: float | None = None,
    check_every: int | None = None,
    log=print,
    mode: str | None = None,
    precision: Precision | None = None,
    config=None,
    text_normalization="none",
    cache: str = "auto",
    adapter: bool = False,
    parity_checks: tuple[Callable, ...] = (),
    train_config: TrainConfig | None = None,
    lora_r: int | None = None,
    lora_alpha: int | None = None,
) -> AlignmentReport:
    """All checks on `samples`; `model` (the base model, no adapter) is trained in place by the overfit
    check (pass a throwaway copy), which fits through `train.recipe.train` under `train_config`: the
    run's `train` settings (precision, loss weights, LoRA targets, ...; default TrainConfig's, with
    `audio_tokenizer` naming `codec`), of which the fit sets the learning rate, steps and LoRA size
    (`max_steps`, `learning_rate`, `lora_r`, `lora_alpha`, else `fit_settings(model)`), the text
    front-end (`text_normalization`) and precision (`precision`, else auto for the model's device).
    `adapter`: `model` is a training run's adapter (PEFT, loaded as infer loads it): judged by
    `check_adapter` on all the samples instead of the overfit.
    `parity_checks`: extra prompt-parity checks against independent implementations of the prompt (e.g.
    transformers' native processor, `native.parity.alignment_check`), each called as
    check(samples, tokenizer, codec, config, infer_inputs) with the samples as inference prepares them,
    returning a CheckResult (or None where it cannot run).

    Without the overfit check `model` may be None and `config` the model config: prompt parity and
    the label audit need no weights. Each side runs the text front-end on the raw `samples` itself, as
    training and inference do.
    """
    side = side or TrainingSide()
    config = config if config is not None else model.config
    infer_samples = [normalize_sample(s, text_normalization) for s in samples]
    train_samples = [normalize_sample(s, text_normalization) if side.normalize_text else s for s in samples]
    dataset = side.dataset_cls(train_samples, tokenizer, codec, num_codebooks=config.audio_num_codebooks)
    train_collator = DictCollator(side.collator_factory(config))
    infer_inputs = InferenceInputs(tokenizer, codec, config)
    audio_out_bos = tokenizer.convert_tokens_to_ids("<|audio_out_bos|>")
    checks = [check_prompt_parity(dataset, train_collator, infer_inputs, audio_out_bos, infer_samples)]
    checks += [
        c
        for c in (extra(infer_samples, tokenizer, codec, config, infer_inputs) for extra in parity_checks)
        if c is not None
    ]
    checks.append(check_labels(dataset, train_collator, config.audio_stream_eos_id))
    for c in checks:
        log(f"[{'PASS' if c.ok else 'FAIL'}] {c.name}: {c.summary}")
    meta = {
        "samples": len(samples),
        "audio_num_codebooks": config.audio_num_codebooks,
        "use_delay_pattern": bool(config.use_delay_pattern),
    }
    if adapter:
        checks.append(check_adapter(dataset, model, tokenizer, codec, infer_samples, log))
        log(f"[{'PASS' if checks[-1].ok else 'FAIL'}] {checks[-1].name}: {checks[-1].summary}")
    elif overfit:
        auto = fit_settings(model)
        given = {
            "mode": mode,
            "learning_rate": learning_rate,
            "max_steps": max_steps,
            "check_every": check_every,
            "lora_r": lora_r,
            "lora_alpha": lora_alpha,
        }
        base = train_config or TrainConfig(train_data="", audio_tokenizer=str(getattr(codec, "name", "tiny")))
        auto["lora_alpha"] = (lora_r or auto["lora_r"]) * TrainConfig.lora_alpha // TrainConfig.lora_r
        settings = {k: v if v is not None else auto[k] for k, v in given.items()}
        precision = precision or resolve_precision("auto", next(model.parameters()).device)
        # The training side's text front-end, as `train` applies it where samples load.
        cfg = fit_config(
            replace(
                base,
                text_normalization=text_normalization if side.normalize_text else "none",
                mixed_precision=precision.name,
            ),
            settings,
        )
        meta["overfit"] = dict(settings, precision=precision.name, via="train.recipe")
        log(
            f"overfit ({settings['mode']}, LoRA r={settings['lora_r']} through train's recipe, lr "
            f"{settings['learning_rate']:g}, at most {settings['max_steps']} steps, {precision.name}) on sample "
            f"{overfit_index} ..."
        )
        sample = infer_samples[overfit_index]
        # The training cache's codes (prompt parity just showed the inference side encodes them equally).
        known = {
            str(q): dataset.codes(p) for p in (sample.ref_audio, sample.target_audio) for q in (p, os.path.abspath(p))
        }
        custom = lambda part, real: part if part is not real else None  # noqa: E731  (recipe's own by default)
        checks.append(
            check_overfit(
                sample,
                samples[overfit_index],
                model,
                tokenizer,
                codec,
                cfg,
                dataset.codes(sample.target_audio),
                settings["mode"],
                settings["check_every"],
                log=log,
                known_codes=known,
                cache=cache,
                collator_factory=custom(side.collator_factory, build_collator),
                loss_fn=custom(side.loss_fn, compute_loss),
            )
        )
        log(f"[{'PASS' if checks[-1].ok else 'FAIL'}] {checks[-1].name}: {checks[-1].summary}")
    return AlignmentReport(checks, meta)
