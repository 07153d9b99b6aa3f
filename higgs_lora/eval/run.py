"""`higgs-lora eval`: generate every held-out sample with the fine-tuned model and with a baseline,
score both (and the ground-truth targets, the ceiling) through one code path, write the report.

Both systems get the same prompts, the same generation settings and the same seed per sample
(`seed + index`), so a difference in the scores is the models' doing. Models are loaded one at a
time and freed before the next, so evaluating a 3B model needs the memory of one.
"""

from __future__ import annotations

import gc
import os
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from ..constants import target_token_cap
from ..defaults import BASE_MODEL

FINE_TUNED, BASELINE, GROUND_TRUTH = "fine_tuned", "baseline", "ground_truth"


@dataclass
class EvalConfig:
    data: str
    model_path: str | None  # None: with lora_path the training run's base model, else the released base
    output_dir: str
    lora_path: str | None = None
    # None: the training run's setting (higgs_lora_run.json next to the adapter / in the merged
    # folder), else the project default, as for infer and clone (`resolve_settings`).
    audio_tokenizer: str | None = None
    baseline_model: str | None = None  # None: the base model the fine-tune started from; "none": no baseline
    speaker_encoder: str = "resemblyzer"
    asr: str = "auto"  # asr.load_asr: pocketsphinx for English, Whisper for the rest
    language: str = "auto"
    system_prompt: str | None = None
    text_normalization: str | None = None
    max_samples: int | None = None
    seed: int = 1234
    temperature: float = 0.3
    top_k: int | None = 50
    top_p: float = 0.95
    ras_win_len: int = 7
    max_new_tokens: int = 2048
    max_length_ratio: float = 3.0  # per-sample cap: this many times the target's length (0 = only max_new_tokens)
    device: str | None = None
    dtype: str = "auto"


def resolve_settings(cfg: EvalConfig) -> EvalConfig:
    """Model, codec, system prompt and text front-end as `infer` resolves them: a given value wins,
    else the training run's, else the default. The prompts must be the ones the model was trained on."""
    from ..infer.run_settings import resolve_inference

    settings = resolve_inference(
        cfg.model_path, cfg.lora_path, cfg.audio_tokenizer, cfg.system_prompt, text_normalization=cfg.text_normalization
    )
    settings.report()
    return replace(
        cfg,
        model_path=settings["model_path"],
        audio_tokenizer=settings["audio_tokenizer"],
        system_prompt=settings["system_prompt"],
        text_normalization=settings["text_normalization"],
    )


def resolve_baseline(cfg: EvalConfig) -> str | None:
    """The explicit --baseline_model; else the model under --lora_path; else the base a merged model came from."""
    if cfg.baseline_model:
        return None if cfg.baseline_model == "none" else cfg.baseline_model
    if cfg.lora_path:
        return cfg.model_path
    from ..train.config import read_run_config

    return (
        read_run_config(cfg.model_path).get("base_model", BASE_MODEL) if Path(cfg.model_path).is_dir() else BASE_MODEL
    )


class EvalInterrupted(Exception):
    """Ctrl-C during generation: the report covers the samples done (and was written); the message says so."""


def generate_all(
    system: str,
    model_path: str,
    lora_path: str | None,
    samples,
    targets_s: list[float],
    cfg: EvalConfig,
    out: Path,
    earlier: dict | None = None,
) -> list[dict]:
    """Clone every sample with one model; WAVs go to OUT/audio/SYSTEM/NNNN.wav. A sample that fails gets a
    record with `wav` None and its `error`; a device error stops everything (`infer.errors`), writing
    OUT/results.json with these records and `earlier` (the systems already generated). After a Ctrl-C
    the sample being generated is finished and fewer records than samples come back."""
    from tqdm.auto import tqdm

    from ..data.audio import write_wav
    from ..infer.engine import VoiceCloner
    from ..infer.errors import DeviceError, first_line, is_device_error
    from ..infer.settings import GenerationSettings
    from ..interrupts import UntilCtrlC

    cloner = VoiceCloner.load(model_path, lora_path, cfg.audio_tokenizer, device=cfg.device, dtype=cfg.dtype)
    folder = out / "audio" / system
    records = []
    try:
        for index, sample in UntilCtrlC(
            enumerate(tqdm(samples, desc=f"Generating ({system})", unit="sample")), "sample"
        ):
            cap = target_token_cap(
                cfg.max_new_tokens,
                cfg.max_length_ratio,
                targets_s[index],
                cloner.codec.tps,
                cloner.config.audio_num_codebooks,
            )
            settings = GenerationSettings(
                max_new_tokens=cap,
                temperature=cfg.temperature,
                top_k=cfg.top_k,
                top_p=cfg.top_p,
                ras_win_len=cfg.ras_win_len,
                seed=cfg.seed + index,
            )
            t0 = time.time()
            try:
                wav, sr, gen = cloner.clone(sample, settings)
            except Exception as err:
                if is_device_error(err):  # the GPU is gone: stop, keeping what was generated
                    raise DeviceError(
                        f"{system} sample {index}",
                        err,
                        done=f"{len(records)} {system} clips generated",
                        saved=str(write_partial(out, {**(earlier or {}), system: records}, system, index, err)),
                    ) from err
                # a bad sample: an unscored row saying why, and on to the next
                reason = getattr(err, "reason", "generation_failed")
                tqdm.write(f"skipping {system} sample {index}: [{reason}] {first_line(err)}")
                records.append({"wav": None, "error": f"[{reason}] {first_line(err)}", "max_new_tokens": cap})
                continue
            path = folder / f"{index:04d}.wav"
            write_wav(path, wav, sr)
            records.append(
                {
                    "wav": str(path.relative_to(out)),
                    "stopped_at_eos": bool(gen.stopped),
                    "max_new_tokens": cap,
                    "generation_s": round(time.time() - t0, 2),
                }
            )
    finally:
        del cloner
        gc.collect()
        _empty_cuda_cache()
    return records


def write_partial(out: Path, generated: dict, system: str, index: int, err: BaseException) -> Path:
    """OUT/results.json after a device error: every clip generated so far, per system (WAVs in OUT/audio)."""
    import json

    from ..infer.errors import first_line

    path = out / "results.json"
    document = {
        "stopped_by_device_error": {"system": system, "index": index, "error": first_line(err)},
        "generated": generated,
    }
    path.write_text(json.dumps(document, indent=2, ensure_ascii=False), encoding="utf-8")
    return path


def trained_targets(run: dict, run_dir: Path) -> set[str]:
    """The target clips a training run learned from: its --train_data minus what it held out (the run
    folder's held_out.jsonl, or its --eval_data). Read from the files' records: no audio is decoded."""
    from ..data.data_file import iter_records
    from ..data.formats import extract, resolve_audio
    from ..train.eval_split import HELD_OUT

    def targets(path) -> set[str]:
        path = Path(path)
        found = set()
        for record in iter_records(path):
            audio = extract(record).target_audio
            if isinstance(audio, str) and audio:
                found.add(os.path.abspath(resolve_audio(audio, path.parent)))
        return found

    train_data = run.get("train_data")
    if not train_data or not Path(train_data).is_file():
        return set()
    # A merged model's folder has the run settings but not the run folder's files.
    held = [p for p in (run_dir / HELD_OUT, Path(run.get("output_dir") or run_dir) / HELD_OUT) if p.is_file()]
    held_out = targets(held[0]) if held else set()
    if run.get("eval_data") and Path(run["eval_data"]).is_file():
        held_out |= targets(run["eval_data"])
    return targets(train_data) - held_out


def trained_on_warning(cfg: EvalConfig, samples) -> str | None:
    """A warning when some samples' target clips were trained on by the adapter (or merged model) scored."""
    from ..train.config import read_run_config

    folder = cfg.lora_path or cfg.model_path
    if not folder or not Path(folder).is_dir():
        return None
    run = read_run_config(folder)
    try:
        trained = trained_targets(run, Path(folder))
    except (OSError, ValueError):  # a moved or edited training file: nothing to compare against
        return None
    seen = [s for s in samples if s.target_audio and os.path.abspath(s.target_audio) in trained]
    if not seen:
        return None
    from ..train.eval_split import HELD_OUT

    held = next(
        (p for p in (Path(folder) / HELD_OUT, Path(run.get("output_dir") or folder) / HELD_OUT) if p.is_file()), None
    )
    fix = (
        f"score {held} (the run's held-out samples)"
        if held is not None
        else "train with --eval_split (the run then writes held_out.jsonl) or score other recordings"
    )
    return (
        f"warning: {len(seen)} of {len(samples)} eval samples were in this model's training data "
        f"({run['train_data']}); their scores say how well it learned them, not how it clones new text; {fix}"
    )


def _empty_cuda_cache() -> None:
    import torch

    from ..infer.errors import is_device_error

    if torch.cuda.is_available():
        try:
            torch.cuda.empty_cache()
        except Exception as err:  # after a device error this fails too; the first error is the one to report
            if not is_device_error(err):
                raise


def evaluate(cfg: EvalConfig) -> Path:
    """Run the whole evaluation; returns the path of report.md."""
    import soundfile as sf

    from ..data.audio import audio_duration, load_audio
    from ..data.validate import load_samples
    from .metrics import SCORING_SR, Scorers
    from .report import write_report

    cfg = resolve_settings(cfg)
    samples = load_samples(cfg.data, cfg.system_prompt, require_target=True, text_normalization=cfg.text_normalization)
    if cfg.max_samples:
        samples = samples[: cfg.max_samples]
    warning = trained_on_warning(cfg, samples)
    if warning:
        print(warning, file=sys.stderr, flush=True)
    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    # Scorers first: a missing optional package should fail in seconds, not after hours of generation.
    scorers = Scorers.load(cfg.speaker_encoder, cfg.asr, cfg.language)
    targets_s = [audio_duration(s.target_audio) for s in samples]

    systems = [(FINE_TUNED, cfg.model_path, cfg.lora_path)]
    baseline = resolve_baseline(cfg)
    if baseline:
        systems.append((BASELINE, baseline, None))
    total = len(samples)
    generated: dict = {}
    for name, path, lora in systems:
        generated[name] = generate_all(name, path, lora, samples, targets_s, cfg, out, earlier=generated)
        if len(generated[name]) < len(samples):  # Ctrl-C: score what every system that ran has done
            samples = samples[: len(generated[name])]
            break
    systems = [s for s in systems if s[0] in generated]

    rows = []
    for index, sample in enumerate(samples):
        base = {
            "index": index,
            "speaker": sample.speaker or "",
            "target_text": sample.target_text,
            "reference_audio": sample.ref_audio,
        }
        target = load_audio(sample.target_audio, SCORING_SR)
        rows.append(
            {
                **base,
                "system": GROUND_TRUTH,
                "wav": os.path.relpath(sample.target_audio, out),
                **scorers.score(target, SCORING_SR, sample, targets_s[index], None),
            }
        )
        for name, _, _ in systems:
            record = generated[name][index]
            if record["wav"] is None:  # the sample failed to generate: listed, not scored
                rows.append({**base, "system": name, **record})
                continue
            wav, sr = sf.read(str(out / record["wav"]), dtype="float32")
            metrics = scorers.score(wav, sr, sample, targets_s[index], record["stopped_at_eos"])
            rows.append({**base, "system": name, **record, **metrics})

    _add_other_speaker_sim(rows, samples, scorers)
    settings = asdict(cfg)
    settings["baseline_model"] = baseline if any(name == BASELINE for name, _, _ in systems) else None
    settings.update(scorers.describe())
    if len(samples) < total:
        settings["interrupted"] = f"Ctrl-C after {len(samples)} of {total} samples; systems: {', '.join(generated)}"
    report = write_report(rows, settings, out)
    if len(samples) < total:
        raise EvalInterrupted(f"{settings['interrupted']}; report for those in {report}")
    return report


def _add_other_speaker_sim(rows: list[dict], samples, scorers) -> None:
    """The floor that gives SIM its scale: a real recording of ANOTHER speaker in the set against each
    sample's reference (ground-truth rows, `sim_other_speaker`). Needs speaker labels and two speakers."""
    if scorers.speaker is None:
        return
    from .speaker import cosine

    for row in rows:
        if row["system"] != GROUND_TRUTH or not row["speaker"]:
            continue
        sample = samples[row["index"]]
        other = next((s for s in samples if s.speaker and s.speaker != sample.speaker), None)
        if other is not None:
            row["sim_other_speaker"] = round(
                cosine(scorers.reference_embedding(other.target_audio), scorers.reference_embedding(sample.ref_audio)),
                4,
            )
