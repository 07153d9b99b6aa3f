"""`higgs-lora tokenize`: encode a data set's audio once into the on-disk code cache (torchrun shards it)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from ..defaults import AUDIO_TOKENIZER
from .common import add_system_prompt

NAME = "tokenize"
SUMMARY = "encode every distinct audio file of a data set once into the code cache (train/infer --cache_dir)"
# Each clip's entry is written whole (atomic rename), so what was encoded before a Ctrl-C is kept.
INTERRUPTED_HINT = "the clips encoded so far are kept in --cache_dir; the same command encodes the rest"


def add_arguments(p) -> None:
    p.add_argument("data", metavar="DATA", help="ChatML JSON/JSONL data file (training or inference samples)")
    p.add_argument(
        "--audio_tokenizer", default=AUDIO_TOKENIZER, help="hub id, folder or tiny; the cache is kept per codec"
    )
    p.add_argument(
        "--cache_dir", required=True, help="cache folder; reruns skip what is done, several runs and ranks share it"
    )
    p.add_argument("--device", default=None, help="codec device (default: this rank's GPU if any, else cpu)")
    p.add_argument("--report", default=None, help="write {total, cached, encoded, failed: {file: reason}} as JSON here")
    add_system_prompt(p)


def _start_process_group() -> None:
    """Under torchrun (WORLD_SIZE > 1) join the ranks over gloo so each encodes its share."""
    import torch.distributed as dist

    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not dist.is_initialized():
        dist.init_process_group("gloo")


def run(args) -> int:
    import torch

    from ..data.cache import CodeCache
    from ..data.codes import load_codec
    from ..data.validate import load_samples

    # Audio is not decoded here a first time: the codec decodes every clip anyway and records the ones
    # that fail. A full check would also run on every rank, and would refuse the whole set over one
    # silent or over-long clip that `train --skip_invalid` drops, leaving nothing to --require_cache.
    samples = load_samples(args.data, args.system_prompt, require_target=False, check_audio=False)
    paths = [p for s in samples for p in (s.ref_audio, s.target_audio) if p]
    _start_process_group()
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    device = args.device or (f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu")
    codec = load_codec(args.audio_tokenizer, device=device)
    cache = CodeCache.for_codec(args.cache_dir, codec)
    report = cache.build(codec, paths)
    counts = torch.tensor([report.encoded, report.reused])
    if torch.distributed.is_initialized():  # totals over all ranks
        torch.distributed.all_reduce(counts)
    if int(os.environ.get("RANK", "0")) != 0:
        return 1 if report.failed else 0
    total = len(set(paths))
    print(
        f"{total} distinct audio files in {len(samples)} samples: {len(report.entries)} cached in {cache.dir}; "
        f"encoded {int(counts[0])} now, {int(counts[1])} were already done"
        + (f"; {len(report.failed)} failed" if report.failed else "")
    )
    for path, reason in list(report.failed.items())[:20]:
        print(f"  failed: {path}: {reason}", file=sys.stderr)
    if len(report.failed) > 20:
        print(f"  ... and {len(report.failed) - 20} more", file=sys.stderr)
    if args.report:
        Path(args.report).write_text(
            json.dumps(
                {
                    "total": total,
                    "cached": len(report.entries),
                    "encoded": int(counts[0]),
                    "failed": report.failed,
                    "cache_dir": str(cache.dir),
                },
                indent=2,
                ensure_ascii=False,
            ),
            encoding="utf-8",
        )
    return 1 if report.failed else 0
