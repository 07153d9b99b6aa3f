"""check-alignment: proof that training and inference see the same thing.

Three checks, each able to fail:
- prompt parity: per sample, the ids the trainer feeds up to the target's <|audio_out_bos|> equal
  the ids inference builds from the same components, and the reference codes the model sees
  (collated: stream BOS/EOS, delay pattern) are identical on both sides;
- label audit: per sample, text and audio label counts; no label on the reference clip; the
  stream EOS is a target in every codebook; audio labels equal the target codes they sit on;
- overfit: fit one sample through the training path (training dataset, collator, loss, the
  HiggsAudioTrainer with the run's precision, a padded batch of 2), then judge it through the
  inference path. `regenerate` (small models, all weights trained): greedy generation reproduces
  the target codes exactly and stops. `teacher_forced` (large models, a LoRA): the model's argmax
  audio codes at every target position of the inference inputs continued by the target equal the
  target codes; it converges in tens of steps where free-running regeneration would need hundreds.

- adapter (`--lora_path RUN`, instead of the overfit): the run's own adapter, loaded as `infer` loads
  it, on the run's own samples: its teacher-forced agreement on the inference inputs must beat the
  same model with the adapter switched off, and beat how often its argmax merely repeats the frame it
  was given. A run whose training saw other inputs than inference builds does not improve what
  inference asks of it; one trained on unshifted labels learned to repeat its input.

Further prompt-parity checks against independent implementations register with
`register_parity_check` (the one place; run_checks runs each after the built-in parity check).

The training side (dataset class, collator, loss) is injectable so the tests can show each check
catching a broken pipeline: an unshifted loss, a delay-pattern mismatch, an unmasked reference.
"""

from __future__ import annotations

import contextlib
import json
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from .data.dataset import DictCollator, VoiceCloningDataset, batch_to_inputs, build_collator, make_chatml_sample
from .data.sample import CloneSample, inference_prompt
from .data.text import normalize_sample
from .infer.engine import ChunkSettings, GenerationSettings, InferenceInputs, VoiceCloner
from .model.precision import Precision, resolve_precision
from .train.loss import IGNORE, compute_loss



@dataclass
class CheckResult:
    name: str
    ok: bool
    summary: str
    details: dict | list = field(default_factory=dict)


@dataclass
class TrainingSide:
    """What the trainer uses; defaults are the real pipeline, tests swap in broken parts."""

    dataset_cls: type = VoiceCloningDataset
    collator_factory: Callable = build_collator
    loss_fn: Callable = compute_loss
    normalize_text: bool = True  # the text front-end (data/text.py) on the training side


def _segments(starts: torch.Tensor, total: int) -> list[tuple[int, int]]:
    bounds = starts.tolist() + [total]
    return [(bounds[i], bounds[i + 1]) for i in range(len(starts))]


def check_prompt_parity(dataset, train_collator, infer_inputs: InferenceInputs, audio_out_bos_id: int,
                        infer_samples: list[CloneSample] | None = None) -> CheckResult:
    """`infer_samples`: the samples as the inference side prepared them (default: the training side's)."""
    rows = []
    for index, sample in enumerate(infer_samples or dataset.samples):
        item = dataset[index]
        train_ids = item.input_ids.tolist()
        bos_positions = [i for i, t in enumerate(train_ids) if t == audio_out_bos_id]
        train_prefix = train_ids[: bos_positions[-1] + 1]
        infer_codes = infer_inputs.reference_codes(sample)
        infer = infer_inputs(sample, codes=infer_codes)
        infer_ids = infer["input_ids"][0].tolist()
        ids_equal = train_prefix == infer_ids
        first_diff = next((i for i, (a, b) in enumerate(zip(train_prefix, infer_ids)) if a != b),
                          None if ids_equal else min(len(train_prefix), len(infer_ids)))
        train_batch = train_collator([dataset[index]])
        t_seg = _segments(train_batch["audio_out_ids_start"], train_batch["audio_out_ids"].shape[1])[0]
        train_ref = train_batch["audio_out_ids"][:, t_seg[0]:t_seg[1]]
        infer_ref = infer["audio_out_ids"]
        codes_equal = train_ref.shape == infer_ref.shape and bool(torch.equal(train_ref, infer_ref.cpu()))
        raw_equal = len(infer_codes) == 1 and np.array_equal(dataset.codes(sample.ref_audio), infer_codes[0])
        row = {"index": index, "prompt_tokens": len(infer_ids), "ids_equal": ids_equal,
               "reference_codes_equal": codes_equal and raw_equal}
        if not ids_equal:
            row["first_difference_at"] = first_diff
        if not codes_equal:
            row["reference_shapes"] = [list(train_ref.shape), list(infer_ref.shape)]
        row["ok"] = ids_equal and codes_equal and raw_equal
        rows.append(row)
    bad = [r["index"] for r in rows if not r["ok"]]
    ok = not bad
    summary = f"{len(rows) - len(bad)}/{len(rows)} samples: training prompt == inference prompt, same reference codes"
    if bad:
        summary += f"; mismatch in samples {bad}"
    return CheckResult("prompt_parity", ok, summary, rows)


def check_labels(dataset, train_collator, eos_id: int) -> CheckResult:
    rows = []
    for index in range(len(dataset)):
        batch = train_collator([dataset[index]])
        labels = batch["label_audio_ids"]
        segs = _segments(batch["audio_out_ids_start"], labels.shape[1])
        ref, target = segs[0], segs[-1]
        ref_labels = int((labels[:, ref[0]:ref[1]] != IGNORE).sum())
        tgt = labels[:, target[0]:target[1]]
        tgt_codes = batch["audio_out_ids"][:, target[0]:target[1]]
        eos_trained = bool(((tgt == eos_id).sum(dim=1) >= 1).all())
        mask = tgt != IGNORE
        labels_match = bool(torch.equal(tgt[mask], tgt_codes[mask]))
        row = {"index": index, "text_labels": int((batch["label_ids"] != IGNORE).sum()),
               "audio_labels": int(mask.sum()), "reference_labels": ref_labels,
               "stream_eos_trained": eos_trained, "audio_labels_match_codes": labels_match}
        row["ok"] = row["text_labels"] > 0 and row["audio_labels"] > 0 and ref_labels == 0 and eos_trained and labels_match
        rows.append(row)
    bad = [r["index"] for r in rows if not r["ok"]]
    ok = not bad
    summary = (f"{len(rows) - len(bad)}/{len(rows)} samples: reference masked, target trained, stream EOS a target"
               + (f"; wrong labels in samples {bad}" if bad else ""))
    return CheckResult("label_audit", ok, summary, rows)


# Fitting settings per model size, measured: all weights of a tiny model fit one sample for exact
# free-running regeneration in ~50-300 steps at 3e-3; a LoRA (r=16) on the released 5.8B shape
# reaches 100 % teacher-forced agreement by step 25 at 1e-3 and diverges at 3e-3 (H200, bf16).
FULL_FIT_MAX_PARAMS = 50_000_000  # auto: train all weights below this size, a LoRA above it
FIT_SETTINGS = {
    "full": {"mode": "regenerate", "learning_rate": 3e-3, "max_steps": 400, "check_every": 25},
    "lora": {"mode": "teacher_forced", "learning_rate": 1e-3, "max_steps": 100, "check_every": 5},
}
MODES = ("regenerate", "teacher_forced")


def padded_partner(sample: CloneSample) -> CloneSample:
    """The same sample under a different system prompt: same reference and target, another length.

    Fitting [sample, partner] makes the fit a real padded batch of 2, as in training, while the
    target to reproduce stays one.
    """
    prompt = "" if sample.system_prompt else "Generate speech in the provided voice, clearly and naturally."
    return replace(sample, system_prompt=prompt)


class _KnownCodes:
    """A codec that answers from codes already computed (by the training cache) and encodes anything else."""

    def __init__(self, codec, known: dict):
        self._codec, self._known = codec, known
        self.sampling_rate, self.tps, self.num_codebooks = codec.sampling_rate, codec.tps, codec.num_codebooks

    def encode(self, audio_path_or_wv, sr=None):
        key = str(audio_path_or_wv) if isinstance(audio_path_or_wv, (str, Path)) else None
        if key in self._known:
            return torch.from_numpy(np.asarray(self._known[key]))
        return self._codec.encode(audio_path_or_wv, sr)

    def decode(self, codes):
        return self._codec.decode(codes)


def teacher_forced_inputs(infer_inputs: InferenceInputs, sample: CloneSample, target: np.ndarray,
                          codes: list[np.ndarray] | None = None) -> dict:
    """The inference prompt (as `InferenceInputs` builds it) continued by the target audio stream,
    one <|AUDIO_OUT|> placeholder for its columns, collated by the inference collator."""
    prompt_ids, _ = inference_prompt(sample, infer_inputs.tokenizer)
    if codes is None:
        codes = infer_inputs.reference_codes(sample)  # the inference side's own codec call
    audio_out = infer_inputs.tokenizer.convert_tokens_to_ids("<|AUDIO_OUT|>")
    chatml = make_chatml_sample(prompt_ids + [audio_out], None, list(codes) + [target])
    return batch_to_inputs(infer_inputs.collator([chatml]))


def stream_target_mask(stream: torch.Tensor, bos_id: int, eos_id: int) -> torch.Tensor:
    """Columns a model must predict in a delay-patterned stream: real codes and each codebook's first
    EOS (the stream-BOS triangle and the EOS padding after the first EOS are forced at generation)."""
    is_eos = stream == eos_id
    after_first_eos = (is_eos.long().cumsum(dim=1) - is_eos.long()) > 0
    return (stream != bos_id) & ~after_first_eos


@torch.no_grad()
def teacher_forced_agreement(model, inputs: dict, config) -> dict:
    """Argmax audio codes at every target position of the last audio stream vs the stream itself.

    Without autocast, in the weights' own dtypes, as `infer` runs the model (training's autocast is
    the fit's business; the judge sees the numerics users get)."""
    device = next(model.parameters()).device
    model.eval()
    batch = {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in inputs.items()}
    out = model(**batch, use_cache=False)
    start = int(batch["audio_out_ids_start"][-1])
    stream = batch["audio_out_ids"][:, start:]
    predicted = out.audio_logits[start:-1].argmax(-1).T  # row k predicts column k + 1
    targets = stream[:, 1:]
    mask = stream_target_mask(targets, config.audio_stream_bos_id, config.audio_stream_eos_id)
    agree = (predicted == targets) & mask
    n = int(mask.sum())
    # The same argmax against the column it was given: what a model trained without the shift learns.
    copies = (predicted == stream[:, :-1]) & mask
    return {"agreement": float(agree.sum()) / n if n else 0.0, "positions": n,
            "wrong": n - int(agree.sum()), "copy_agreement": float(copies.sum()) / n if n else 0.0}


@contextlib.contextmanager
def as_inference_runs(model):
    """The model's own forward for the judge's duration. Under bf16/fp16 Trainer (accelerate) replaces
    the trained module's `forward` with an autocast wrapper; `infer` loads the weights fresh and runs
    them without one, so the judge must too (with the wrapper, the static cache, allocated in the
    weights' dtype, received bf16 keys: every CUDA run of the check crashed)."""
    patched = [m for m in {id(m): m for m in (model, getattr(model, "get_base_model", lambda: model)())}.values()
               if "_original_forward" in vars(m) and "forward" in vars(m)]
    wrappers = [vars(m)["forward"] for m in patched]
    for m in patched:
        m.forward = m._original_forward
    try:
        yield
    finally:
        for m, wrapper in zip(patched, wrappers):
            m.forward = wrapper


def check_overfit(sample: CloneSample, model, tokenizer, codec, side: TrainingSide, mode: str = "regenerate",
                  precision: Precision | None = None, max_steps: int = 400, learning_rate: float = 3e-3,
                  check_every: int = 25, log=print, known_codes: dict | None = None, cache: str = "auto") -> CheckResult:
    """Fit one sample through the training path (the training dataset class, collator, loss and
    HiggsAudioTrainer with the run's precision, a padded batch of 2), then judge it through the
    inference path: `regenerate` greedy-generates through `VoiceCloner.clone`, the entry point of
    `infer` and `clone`, with its KV cache (`cache`: auto = what infer picks on this device, static on
    CUDA) and without autocast, as infer runs, and expects the target codes exactly (and the stop);
    `teacher_forced` expects the model's argmax at every target position of the inference inputs
    continued by the target to equal the target codes."""
    from transformers import PrinterCallback, TrainerCallback, TrainingArguments

    from .train.trainer import HiggsAudioTrainer

    if mode not in MODES:
        raise ValueError(f"overfit mode {mode!r}: use one of {', '.join(MODES)}")
    device = next(model.parameters()).device
    precision = precision or resolve_precision("auto", device)
    codec = _KnownCodes(codec, known_codes or {})
    dataset = side.dataset_cls([sample, padded_partner(sample)], tokenizer, codec,
                               num_codebooks=model.config.audio_num_codebooks)
    target = dataset.codes(sample.target_audio)
    infer_inputs = InferenceInputs(tokenizer, codec, model.config)
    tf_inputs = teacher_forced_inputs(infer_inputs, sample, target) if mode == "teacher_forced" else None
    cloner = VoiceCloner(model, tokenizer, codec, cache=cache) if mode == "regenerate" else None
    one_chunk = ChunkSettings(max_chars=0)  # the target as one segment, as training saw it
    settings = GenerationSettings(max_new_tokens=target.shape[1] + 2 * model.config.audio_num_codebooks + 8,
                                  temperature=0.0, ras_win_len=0)
    history: list[dict] = []
    state = {"generated": None, "tf": None, "passed": False}

    def judge(step: int, loss: float) -> bool:
        model.eval()  # generation and the teacher-forced pass never run with dropout
        row = {"step": step, "loss": round(loss, 5)}
        if mode == "regenerate":
            with as_inference_runs(model):
                _, _, generated = cloner.clone(sample, settings, one_chunk)
            state["generated"] = generated
            matched = _codes_equal(generated.codes, target)
            row.update(exact_match=matched, stopped=generated.stopped)
            passed = matched and generated.stopped
            log(f"  overfit step {step}: loss {loss:.4f}, regenerated {generated.codes.shape[1]}/"
                f"{target.shape[1]} frames, exact match: {matched}")
        else:
            with as_inference_runs(model):
                tf = teacher_forced_agreement(model, tf_inputs, model.config)
            state["tf"] = tf
            row.update(teacher_forced_agreement=round(tf["agreement"], 5))
            passed = tf["positions"] > 0 and tf["wrong"] == 0
            log(f"  overfit step {step}: loss {loss:.4f}, teacher-forced agreement {tf['agreement']:.2%} "
                f"of {tf['positions']} target codes")
        history.append(row)
        model.train()
        state["passed"] = passed
        return passed

    class Probe(TrainerCallback):
        def on_log(self, args, st, control, logs=None, **kwargs):
            if not logs or "loss" not in logs:
                return
            step = st.global_step
            if (step % check_every == 0 or step >= max_steps) and judge(step, float(logs["loss"])):
                control.should_training_stop = True

    with tempfile.TemporaryDirectory(prefix="higgs_lora_check_") as tmp:
        args = TrainingArguments(
            output_dir=tmp, per_device_train_batch_size=len(dataset), gradient_accumulation_steps=1,
            learning_rate=learning_rate, lr_scheduler_type="constant", warmup_steps=0, weight_decay=0.0,
            max_grad_norm=1.0, max_steps=max_steps, logging_steps=1, save_strategy="no", report_to=[],
            remove_unused_columns=False, dataloader_num_workers=0, dataloader_pin_memory=False,
            use_cpu=device.type == "cpu", disable_tqdm=True, seed=0, **precision.training_arguments())
        trainer = HiggsAudioTrainer(model=model, args=args, train_dataset=dataset,
                                    data_collator=DictCollator(side.collator_factory(model.config)),
                                    loss_fn=side.loss_fn, callbacks=[Probe()])
        trainer.remove_callback(PrinterCallback)  # the check logs its own progress, not every step's dict
        t0 = time.time()
        trainer.train()
    model.eval()
    step = history[-1]["step"] if history else 0
    ok = bool(state["passed"])
    details = {"mode": mode, "steps": step, "seconds": round(time.time() - t0, 1), "learning_rate": learning_rate,
               "max_steps": max_steps, "check_every": check_every, "precision": precision.name, "batch_size": len(dataset),
               "history": history, "target_frames": int(target.shape[1])}
    if mode == "regenerate":
        generated = state["generated"]
        agree = _frame_agreement(generated.codes if generated is not None else None, target)
        details.update(generated_frames=int(generated.codes.shape[1]) if generated is not None else 0,
                       code_agreement=round(agree, 4), cache=cloner.cache_mode, cuda_graphs=cloner.cuda_graphs)
        summary = (f"after {step} steps (lr {learning_rate:g}), greedy generation {'reproduces' if ok else 'does NOT reproduce'} "
                   f"the target ({target.shape[1]} frames; {agree:.1%} of codes agree"
                   f"{', stopped at stream EOS' if generated is not None and generated.stopped else ', no stop'})")
    else:
        tf = state["tf"] or {"agreement": 0.0, "positions": 0}
        details.update(code_agreement=round(tf["agreement"], 5), target_positions=tf["positions"])
        summary = (f"after {step} steps (lr {learning_rate:g}), teacher-forced argmax on the inference inputs "
                   f"{'equals' if ok else 'does NOT equal'} the target codes ({tf['agreement']:.2%} of "
                   f"{tf['positions']} positions)")
    return CheckResult(f"overfit_{mode}", ok, summary, details)


def _codes_equal(a: np.ndarray, b: np.ndarray) -> bool:
    return a is not None and a.shape == b.shape and bool(np.array_equal(a, b))


def _frame_agreement(a: np.ndarray | None, b: np.ndarray) -> float:
    if a is None or a.shape[0] != b.shape[0]:
        return 0.0
    n = min(a.shape[1], b.shape[1])
    return float((a[:, :n] == b[:, :n]).sum()) / b.size if b.size else 0.0


@dataclass
class AlignmentReport:
    checks: list[CheckResult]
    meta: dict

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    def to_json(self) -> dict:
        return {"ok": self.ok, **self.meta,
                "checks": {c.name: {"ok": c.ok, "summary": c.summary, "details": c.details} for c in self.checks}}

    def write(self, path: str | Path) -> None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(json.dumps(self.to_json(), indent=2, ensure_ascii=False), encoding="utf-8")

    def text(self) -> str:
        lines = [f"[{'PASS' if c.ok else 'FAIL'}] {c.name}: {c.summary}" for c in self.checks]
        lines.append("alignment OK" if self.ok else "alignment FAILED")
        return "\n".join(lines)


def check_adapter(dataset, model, tokenizer, codec, infer_samples: list[CloneSample], log=print) -> CheckResult:
    """The run's adapter on the run's samples (no fit): teacher-forced agreement on the inference inputs
    with the adapter on must beat the same weights with it off (PEFT's `disable_adapter`)."""
    config = model.config
    infer_inputs = InferenceInputs(tokenizer, codec, config)
    rows = []
    for index, sample in enumerate(infer_samples):
        inputs = teacher_forced_inputs(infer_inputs, sample, dataset.codes(sample.target_audio))
        with_adapter = teacher_forced_agreement(model, inputs, config)
        with model.disable_adapter():
            base = teacher_forced_agreement(model, inputs, config)
        rows.append({"index": index, "positions": with_adapter["positions"],
                     "agreement": round(with_adapter["agreement"], 5), "agreement_adapter_off": round(base["agreement"], 5),
                     "copy_agreement": round(with_adapter["copy_agreement"], 5)})
    positions = sum(r["positions"] for r in rows)

    def mean(key):
        return sum(r[key] * r["positions"] for r in rows) / positions if positions else 0.0

    agreement, off, copy = mean("agreement"), mean("agreement_adapter_off"), mean("copy_agreement")
    # Two ways to fail: the adapter does not help inference's next-frame prediction, or it predicts the
    # frame it was given better than the next one (trained on unshifted labels).
    ok = positions > 0 and agreement > off and agreement > copy
    summary = (f"teacher-forced agreement on the run's {len(rows)} samples through the inference inputs: "
               f"{agreement:.2%} with the adapter, {off:.2%} without; its argmax repeats the input frame "
               f"{copy:.2%} of the time" + ("" if ok else " (the adapter does NOT learn what inference asks of it)"))
    return CheckResult("adapter_teacher_forced", ok, summary,
                       {"agreement": round(agreement, 5), "agreement_adapter_off": round(off, 5),
                        "copy_agreement": round(copy, 5), "samples": rows})


def fit_settings(model) -> dict:
    """Learning rate, step budget and judging mode for the overfit check: `full` when every weight
    trains (small models), `lora` when an adapter does (large models)."""
    frozen = any(not p.requires_grad for p in model.parameters())
    return dict(FIT_SETTINGS["lora" if frozen else "full"], params="lora" if frozen else "full")


def run_checks(samples: list[CloneSample], model, tokenizer, codec, side: TrainingSide | None = None,
               overfit: bool = True, overfit_index: int = 0, max_steps: int | None = None,
               learning_rate: float | None = None, check_every: int | None = None, log=print,
               mode: str | None = None, precision: Precision | None = None, config=None,
               text_normalization="none", cache: str = "auto", adapter: bool = False,
               parity_checks: tuple[Callable, ...] = ()) -> AlignmentReport:
    """All checks on `samples`; `model` is trained in place by the overfit check (pass a throwaway copy).
    `adapter`: `model` is a training run's adapter (PEFT, loaded as infer loads it): judged by
    `check_adapter` on all the samples instead of the overfit.
    `parity_checks`: extra prompt-parity checks against independent implementations of the prompt (e.g.
    transformers' native processor, `native.parity.alignment_check`), each called as
    check(samples, tokenizer, codec, config, infer_inputs) with the samples as inference prepares them,
    returning a CheckResult (or None where it cannot run).

    Without the overfit check `model` may be None and `config` the model config: prompt parity and
    the label audit need no weights. Unset fit settings come from `fit_settings(model)`. Each side runs
    the text front-end on the raw `samples` itself, as training and inference do.
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
    checks += [c for c in (extra(infer_samples, tokenizer, codec, config, infer_inputs) for extra in parity_checks)
               if c is not None]
    checks.append(check_labels(dataset, train_collator, config.audio_stream_eos_id))
    for c in checks:
        log(f"[{'PASS' if c.ok else 'FAIL'}] {c.name}: {c.summary}")
    meta = {"samples": len(samples), "audio_num_codebooks": config.audio_num_codebooks,
            "use_delay_pattern": bool(config.use_delay_pattern)}
    if adapter:
        checks.append(check_adapter(dataset, model, tokenizer, codec, infer_samples, log))
        log(f"[{'PASS' if checks[-1].ok else 'FAIL'}] {checks[-1].name}: {checks[-1].summary}")
    elif overfit:
        auto = fit_settings(model)
        settings = {"mode": mode or auto["mode"], "learning_rate": learning_rate or auto["learning_rate"],
                    "max_steps": max_steps or auto["max_steps"], "check_every": check_every or auto["check_every"]}
        precision = precision or resolve_precision("auto", next(model.parameters()).device)
        meta["overfit"] = dict(settings, params=auto["params"], precision=precision.name)
        log(f"overfit ({settings['mode']}, {auto['params']} weights, lr {settings['learning_rate']:g}, "
            f"at most {settings['max_steps']} steps, {precision.name}) on sample {overfit_index} ...")
        sample = infer_samples[overfit_index]
        # The training cache's codes (prompt parity just showed the inference side encodes them equally).
        known = {p: dataset.codes(p) for p in (sample.ref_audio, sample.target_audio)}
        checks.append(check_overfit(sample, model, tokenizer, codec, side, settings["mode"], precision,
                                    settings["max_steps"], settings["learning_rate"], settings["check_every"],
                                    log=log, known_codes=known, cache=cache))
        log(f"[{'PASS' if checks[-1].ok else 'FAIL'}] {checks[-1].name}: {checks[-1].summary}")
    return AlignmentReport(checks, meta)
