"""The samples a training run uses: without --skip_invalid, invalid data stops the run before any model is
loaded (InvalidDataError with the validation summary); with it, invalid samples are dropped and listed in
OUTPUT_DIR/skipped_samples.json, every valid sample kept.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from ..ranks import is_rank_zero

SKIPPED_SAMPLES = "skipped_samples.json"


def select_samples(
    train_data: str,
    system_prompt: str,
    skip_invalid: bool,
    output_dir: str | Path,
    text_normalization=None,
    workers: int = 1,
) -> tuple[list, list[int], int]:
    """The valid samples of `train_data`, their indices in the file, and the file's sample count;
    invalid ones stop the run unless `skip_invalid` drops them."""
    from .check_cache import AUDIO_CHECKS, AudioCheckCache
    from .validate import InvalidDataError, validate_file

    # Every clip is decoded to the end once: in `workers` processes (the data loader's count), by rank 0 only;
    # the results are kept by size/mtime, so the other ranks and a restart only stat the files.
    cache = AudioCheckCache(Path(output_dir) / AUDIO_CHECKS)
    if not is_rank_zero() and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        cache.wait_for(since=_process_start() - 5)
    report = validate_file(
        train_data, system_prompt, text_normalization=text_normalization, workers=max(1, workers), audio_cache=cache
    )
    samples = [sample for _, sample in report.samples]
    # A refused run leaves no output folder behind (torchrun then stops the ranks still waiting).
    if not report.ok and not skip_invalid:
        raise InvalidDataError(report)
    if not samples:
        raise InvalidDataError(report)
    if is_rank_zero():
        cache.save()
    if not report.ok:
        problems = [{"index": p.index, "reason": p.reason, "message": p.message} for p in report.problems]
        if is_rank_zero():
            Path(output_dir).mkdir(parents=True, exist_ok=True)
            path = Path(output_dir) / SKIPPED_SAMPLES
            path.write_text(
                json.dumps(
                    {"train_data": str(train_data), "total": report.total, "kept": len(samples), "skipped": problems},
                    indent=1,
                    ensure_ascii=False,
                ),
                encoding="utf-8",
            )
            print(
                f"--skip_invalid: {len(problems)} of {report.total} samples skipped, {len(samples)} kept; "
                f"list in {path}"
            )
    return samples, [index for index, _ in report.samples], report.total


def _process_start() -> float:
    import psutil

    return psutil.Process().create_time()
