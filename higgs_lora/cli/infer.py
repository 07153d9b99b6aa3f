"""`higgs-lora infer`: clone voices for a data file, one WAV per sample + results.json."""

from __future__ import annotations

import json
import re
import sys
import time
from pathlib import Path

from .common import report_interrupt
from .generation_args import add_generation_arguments, add_model_arguments

NAME = "infer"
SUMMARY = "clone voices: one WAV per sample + results.json"


def add_arguments(p) -> None:
    p.add_argument(
        "--chatml_file", required=True, help="samples in any format `validate` reads (target audio optional)"
    )
    p.add_argument("--output_dir", required=True, help="folder for the WAV files and results.json")
    add_model_arguments(p)
    add_generation_arguments(p)
    p.add_argument(
        "--cache_dir",
        default=None,
        help="read reference codes from this audio-code cache (see tokenize); misses are encoded and stored",
    )
    p.add_argument(
        "--require_cache",
        action="store_true",
        help="fail before generating if any reference clip is not in --cache_dir",
    )


def _records_ids(path) -> list:
    """Each record's "id" where the reader gives records as dicts (else None)."""
    try:
        from ..data.data_file import read_records

        return [r.get("id") if isinstance(r, dict) else None for r in read_records(path)]
    except Exception:  # ids are a nicety: a reader that cannot list them must not stop the run
        return []


def output_name(sample, index: int, record_ids: list, used: set) -> tuple[str, str]:
    """(id, file name): the sample's id (or its index), made safe as a file name and unique."""
    sid = getattr(sample, "id", None) or (record_ids[index] if index < len(record_ids) else None)
    sid = str(sid) if sid not in (None, "") else f"{index:04d}"
    stem = re.sub(r"[^\w.-]+", "_", sid).strip("._") or f"{index:04d}"
    if stem in used:
        stem = f"{stem}_{index:04d}"
    used.add(stem)
    return sid, f"{stem}.wav"


def run(args) -> int:
    from tqdm.auto import tqdm

    from ..constants import TEXT_CAP_FRAMES_PER_CHAR as FRAMES_PER_CHAR
    from ..constants import TEXT_CAP_SLACK_FRAMES as SLACK_FRAMES
    from ..data.audio import write_wav
    from ..infer.errors import DeviceError, first_line, is_device_error
    from ..infer.run_settings import validate_with_normalization
    from ..interrupts import UntilCtrlC
    from .generation_args import load_cloner, resolve_settings

    if not Path(args.chatml_file).is_file():
        from ..data.data_file import not_a_data_file

        reason = not_a_data_file(args.chatml_file)
        raise FileNotFoundError(
            f"--chatml_file {args.chatml_file}: {'no such file' if reason == 'data file not found' else reason}"
        )
    if Path(args.output_dir).exists() and not Path(args.output_dir).is_dir():
        raise ValueError(
            f"--output_dir {args.output_dir} is a file, not a folder; name a folder for the WAVs and results.json"
        )
    if args.require_cache and not args.cache_dir:
        raise ValueError("--require_cache needs --cache_dir")
    settings, generation, chunking = resolve_settings(args)
    report = validate_with_normalization(
        args.chatml_file, settings["system_prompt"], settings["text_normalization"], require_target=False
    )
    skipped = [{"index": p.index, "reason": p.reason, "error": p.message} for p in report.problems]
    for p in report.problems:
        print(f"skipping sample {p.index}: [{p.reason}] {p.message}", file=sys.stderr)
    if not report.samples:
        raise ValueError(
            f"{args.chatml_file}: no usable sample ({len(report.problems)} invalid of {report.total}); "
            f"run `higgs-lora validate --for_inference {args.chatml_file}`"
        )
    cloner = load_cloner(args, settings)
    if args.cache_dir:  # the codes training read, not a second encode
        from ..data.cached_codec import cached_codec

        cloner.codec = cloner.prepare_inputs.codec = cached_codec(
            cloner.codec,
            args.cache_dir,
            args.require_cache,
            [s.ref_audio for _, s in report.samples],
            args.chatml_file,
            settings["audio_tokenizer"],
        )
    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    record_ids, used, results = _records_ids(args.chatml_file), set(), []
    device_failure = None  # (index, id, error): the run stops there, see infer.errors
    t_start = time.perf_counter()
    bar = tqdm(report.samples, desc="Cloning", unit="sample")
    for index, sample in (loop := UntilCtrlC(bar, "sample")):
        sid, name = output_name(sample, index, record_ids, used)
        try:
            wav, sr, result = cloner.clone(sample, generation, chunking)
            write_wav(out / name, wav, sr)
        except KeyboardInterrupt:
            raise
        except Exception as err:  # one bad sample (unreadable clip, codec failure...) must not stop the run
            if is_device_error(err):  # ... but a failed GPU must
                device_failure = (index, sid, err)
                break
            reason = getattr(err, "reason", "generation_failed")
            skipped.append({"index": index, "id": sid, "reason": reason, "error": f"{type(err).__name__}: {err}"})
            tqdm.write(f"skipping sample {index} ({sid}): [{reason}] {type(err).__name__}: {err}", file=sys.stderr)
            used.discard(name[:-4])
            continue
        # Real-time factor from the rounded figures the record shows, so the record agrees with itself.
        duration, seconds = round(len(wav) / sr, 3), round(result.seconds, 3)
        results.append(
            {
                "id": sid,
                "index": index,
                "target_text": sample.target_text,
                "output": name,
                "duration_s": duration,
                "frames": result.frames,
                "chunks": len(result.chunks),
                "stopped": result.stopped,
                "seconds": seconds,
                "realtime_factor": round(duration / seconds, 3) if seconds > 0 else None,
                "speaker": sample.speaker,
                "reference_audio": sample.ref_audio,
                "chunk_texts": result.texts,
                "chunk_frames": [int(g.codes.shape[1]) for g in result.chunks],
                "chunk_max_new_tokens": [g.max_new_tokens for g in result.chunks],
            }
        )
        bar.set_postfix(audio=f"{sum(r['duration_s'] for r in results):.0f}s", skipped=len(skipped))
    bar.close()
    capped = [r["id"] for r in results if not r["stopped"]]
    if capped:  # once, not per sample: results.json has "stopped" for each
        print(
            f"warning: {len(capped)} of {len(results)} samples reached a chunk's token cap before the stream EOS "
            f'(cut short or rambling; "stopped": false in results.json): {", ".join(map(str, capped[:5]))}'
            + (" ..." if len(capped) > 5 else ""),
            file=sys.stderr,
        )
    wall = time.perf_counter() - t_start
    audio_s = sum(r["duration_s"] for r in results)
    gen_s = sum(r["seconds"] for r in results)
    summary = {
        "samples": report.total,
        "generated": len(results),
        "skipped": len(skipped),
        "interrupted": loop.interrupted,
        "stopped": sum(r["stopped"] for r in results),
        "chunks": sum(r["chunks"] for r in results),
        "audio_s": round(audio_s, 3),
        "generation_s": round(gen_s, 3),
        "wall_s": round(wall, 3),
        "realtime_factor": round(audio_s / gen_s, 3) if gen_s > 0 else None,
        "frames_per_s": round(sum(r["frames"] for r in results) / gen_s, 2) if gen_s > 0 else None,
    }
    document = {
        "settings": {
            "model": settings["model_path"],
            "lora_path": settings["lora_path"],
            "audio_tokenizer": settings["audio_tokenizer"],
            "system_prompt": settings["system_prompt"],
            "text_normalization": settings["text_normalization"],
            "run_config": str(settings.run_config_path) if settings.run_config_path else None,
            "sources": settings.sources,
            "sampling": {
                "temperature": generation.temperature,
                "top_k": generation.top_k,
                "top_p": generation.top_p,
                "ras_win_len": generation.ras_win_len,
                "seed": generation.seed,
                "max_new_tokens": generation.max_new_tokens,
                "token_cap": f"min(max_new_tokens, {FRAMES_PER_CHAR} * characters + {SLACK_FRAMES}) per chunk",
            },
            "chunking": {
                "max_chars": chunking.max_chars,
                "context_chunks": chunking.context_chunks,
                "crossfade_s": chunking.crossfade_s,
            },
            "cache": cloner.cache_mode,
            "cuda_graphs": cloner.cuda_graphs,
            "device": str(cloner.device),
            "chatml_file": str(args.chatml_file),
        },
        "samples": results,
        "skipped": skipped,
        "summary": summary,
    }
    if device_failure is not None:
        index, sid, err = device_failure
        summary["not_attempted"] = report.total - len(results) - len(skipped) - 1  # after the failed one
        document["stopped_by_device_error"] = {"index": index, "id": sid, "error": first_line(err)}
    (out / "results.json").write_text(json.dumps(document, indent=2, ensure_ascii=False), encoding="utf-8")
    if device_failure is not None:
        raise DeviceError(
            f"sample {index} ({sid})",
            err,
            done=f"{len(results)} of {report.total} samples cloned",
            saved=str(out / "results.json"),
        ) from err
    rtf = f", {summary['realtime_factor']}x real time" if summary["realtime_factor"] else ""
    print(
        f"{len(results)} of {report.total} samples cloned ({len(skipped)} skipped), {audio_s:.1f} s of audio in "
        f"{gen_s:.1f} s{rtf} on {cloner.device} ({cloner.cache_mode} cache); "
        f"{summary['stopped']}/{len(results)} stopped at the stream EOS"
    )
    print(f"wrote {len(results)} WAV files and results.json to {out}")
    if loop.interrupted:
        return report_interrupt(f"{len(results)} of {len(report.samples)} samples done, in {out / 'results.json'}")
    return 0 if results else 1
