"""`gpu-check --full`: every command a GPU user runs, once each, with random weights, through the CLI.

Each step calls `higgs_lora.cli.main` with the argv a user would type (in this process, so the step's
peak CUDA memory can be read) or, for the two-process run, starts `torch.distributed.run`. Steps are
isolated: an exception or a non-zero exit is recorded as that step's error and the next step runs.
Steps that need an earlier step's output (an adapter, a merged folder) say so when it is missing.

The model is the random-weight model folder gpu-check writes (`bench/random_model.py`), the codec the
tiny one (the real codec's weights are a hub download; gpu-check's own infer phase times the real
codec class). `cuda_choices=True` (a CPU run of `--shape small`) makes the CPU take the paths CUDA
takes where a CPU can: the engine's static KV cache (no CUDA graphs on a CPU), bf16 weights for
inference and bf16 autocast for training and check-alignment. fp16 training needs CUDA (Trainer's loss
scaling): on a CPU those steps are recorded as skipped, with the reason.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import traceback
from pathlib import Path

import torch

STEP_KEYS = ("name", "ok", "seconds", "peak_memory_gb", "error")


@contextlib.contextmanager
def static_cache_by_default():
    """The engine's `cache="auto"` resolves to the static KV cache, as it does on CUDA (CUDA graphs stay
    CUDA-only): the CLI commands then run the cache code a GPU user runs."""
    from ..infer import engine

    original = engine.VoiceCloner.__init__

    def init(self, model, tokenizer, codec, cache="auto", *args, **kwargs):
        original(self, model, tokenizer, codec, "static" if cache == "auto" else cache, *args, **kwargs)

    engine.VoiceCloner.__init__ = init
    try:
        yield
    finally:
        engine.VoiceCloner.__init__ = original


def _free_port() -> str:
    with socket.socket() as sock:  # a fixed port collides with other torchrun jobs on the machine
        sock.bind(("127.0.0.1", 0))
        return str(sock.getsockname()[1])


class Steps:
    def __init__(self, device: str, log=print):
        self.device, self.log, self.rows = device, log, []

    def run(self, name: str, fn, needs: tuple[Path, ...] = (), skip: str | None = None) -> dict:
        self.log(f"-- step {name}")
        row = {"name": name, "ok": False, "seconds": 0.0, "peak_memory_gb": None, "error": None}
        missing = [str(p) for p in needs if not Path(p).exists()]
        if skip or missing:
            row.update(skipped=True, error=skip or f"needs {', '.join(missing)} (an earlier step failed)")
            self.rows.append(row)
            return row
        cuda = self.device.startswith("cuda")
        if cuda:
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
        t0 = time.perf_counter()
        try:
            rc = fn()
            row["ok"] = rc in (0, None)
            if not row["ok"]:
                row["error"] = f"exit status {rc}"
        except BaseException as e:  # noqa: BLE001  one failing step (OOM, SystemExit from argparse, ...) is recorded
            if isinstance(e, KeyboardInterrupt):
                raise
            row["error"] = f"{type(e).__name__}: {e}"[:2000]
            row["traceback"] = traceback.format_exc()[-3000:]
        row["seconds"] = round(time.perf_counter() - t0, 2)
        if cuda:
            with contextlib.suppress(Exception):  # after a device error the allocator may be unusable
                row["peak_memory_gb"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
                torch.cuda.synchronize()
        self.log(
            f"   {'ok' if row['ok'] else 'FAILED'} in {row['seconds']} s"
            + (f": {row['error']}" if row["error"] else "")
        )
        self.rows.append(row)
        return row


def cli(argv: list[str]):
    from ..cli import main

    return lambda: main([*argv, "--debug"])  # --debug: the step records the exception itself, not one line


def serve_engine_loads(merged: Path, device: str, sample):
    """boson's own serve engine loads the merged folder and generates (what a user shipping it runs)."""
    from ..data.codes import TinyCodec
    from ..data.sample import inference_chatml
    from ..infer.stream import STOP_STRINGS
    from ..model.compat import ensure_audio_tokenizer_importable

    ensure_audio_tokenizer_importable()
    from boson_multimodal.serve import serve_engine

    original = serve_engine.load_higgs_audio_tokenizer
    serve_engine.load_higgs_audio_tokenizer = lambda *a, **kw: TinyCodec()  # its loader wants the hub codec
    try:
        dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
        engine = serve_engine.HiggsAudioServeEngine(
            str(merged), "tiny", device=device, torch_dtype=dtype, kv_cache_lengths=[1024]
        )
        response = engine.generate(
            inference_chatml(sample),
            max_new_tokens=16,
            force_audio_gen=True,
            stop_strings=STOP_STRINGS,
            temperature=0.7,
            seed=0,
        )
    finally:
        serve_engine.load_higgs_audio_tokenizer = original
    if response.generated_audio_tokens is None:
        raise RuntimeError("boson's serve engine generated no audio tokens from the merged model")
    return 0


def torchrun_train(argv: list[str], log_path: Path):
    """Two training processes on this machine (gloo on CPU; NCCL on CUDA, one GPU per rank)."""
    env = dict(os.environ, OMP_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc_per_node",
            "2",
            "--master_port",
            _free_port(),
            "-m",
            "higgs_lora",
            *argv,
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    log_path.write_text(proc.stdout + "\n--- stderr ---\n" + proc.stderr, encoding="utf-8")
    if proc.returncode != 0:
        raise RuntimeError(f"torchrun exit status {proc.returncode}: {proc.stderr.strip()[-600:]}")
    return 0


def run_steps(ctx: dict, log=print) -> list[dict]:
    """All steps; `ctx`: device, model_dir, workdir, normal (ChatML path), short (samples), columns,
    steps (training steps), plan (its `align` budget: the check-alignment steps must pass, not just run),
    cuda_choices."""
    from .samples import write_chatml

    device, model, work = ctx["device"], str(ctx["model_dir"]), Path(ctx["workdir"]) / "full"
    work.mkdir(parents=True, exist_ok=True)
    cuda = device.startswith("cuda")
    data, short = ctx["normal"], ctx["short"]
    short_json = write_chatml(short, work / "short.json")
    steps, columns, align = str(ctx["steps"]), str(ctx["columns"]), ctx["plan"]["align"]
    common_train = [
        "--train_data",
        data,
        "--base_model",
        model,
        "--audio_tokenizer",
        "tiny",
        "--batch_size",
        "4",
        "--max_steps",
        steps,
        "--gradient_accumulation_steps",
        "1",
        "--logging_steps",
        "1",
        "--save_steps",
        "1000",
        "--report_to",
        "none",
        "--eval_split",
        "0",
        "--dataloader_num_workers",
        "0",
        "--warmup_ratio",
        "0",
    ]
    # inference dtype: what `--dtype auto` gives on CUDA (bf16), forced on a CPU run of the CUDA choices
    infer_dtype = [] if cuda or not ctx["cuda_choices"] else ["--dtype", "bf16"]
    sample = short[0]
    s = Steps(device, log)
    adapter = work / "train_bf16"
    fp16_skip = None if cuda else "fp16 loss scaling needs CUDA (Trainer refuses fp16 on a CPU)"
    with static_cache_by_default() if ctx["cuda_choices"] else contextlib.nullcontext():
        for precision in ("bf16", "fp16"):
            for ckpt in (False, True):
                name = f"train_{precision}" + ("_checkpointing" if ckpt else "")
                s.run(
                    name,
                    cli(
                        [
                            "train",
                            *common_train,
                            "--output_dir",
                            str(work / name),
                            "--mixed_precision",
                            precision,
                            *(["--use_gradient_checkpointing"] if ckpt else []),
                        ]
                    ),
                    skip=fp16_skip if precision == "fp16" else None,
                )
        for mode in ("teacher_forced", "regenerate"):
            s.run(
                f"check_alignment_{mode}",
                cli(
                    [
                        "check-alignment",
                        "--train_data",
                        short_json,
                        "--base_model",
                        model,
                        "--audio_tokenizer",
                        "tiny",
                        "--overfit_mode",
                        mode,
                        "--max_samples",
                        "2",
                        "--max_steps",
                        str(align["max_steps"]),
                        "--check_every",
                        str(align["check_every"]),
                        "--mixed_precision",
                        "bf16",
                        "--device",
                        device,
                        "--report",
                        str(work / f"align_{mode}.json"),
                    ]
                ),
            )
        merged = work / "merged"
        for label, model_args, needs in (
            ("unmerged", ["--model_path", model, "--lora_path", str(adapter)], (adapter,)),
            ("merged", ["--model_path", str(merged)], (merged,)),
        ):
            if label == "merged":
                s.run(
                    "merge",
                    cli(
                        [
                            "merge",
                            "--base_model",
                            model,
                            "--lora_path",
                            str(adapter),
                            "--output_path",
                            str(merged),
                            "--overwrite",
                        ]
                    ),
                    needs=(adapter,),
                )
            gen = [
                *model_args,
                "--audio_tokenizer",
                "tiny",
                "--max_new_tokens",
                columns,
                "--seed",
                "0",
                "--device",
                device,
                *infer_dtype,
            ]
            s.run(
                f"infer_{label}",
                cli(["infer", "--chatml_file", short_json, "--output_dir", str(work / f"infer_{label}"), *gen]),
                needs=needs,
            )
            s.run(
                f"clone_{label}",
                cli(
                    [
                        "clone",
                        "--ref_audio",
                        sample.ref_audio,
                        "--ref_text",
                        sample.ref_text,
                        "--text",
                        sample.target_text,
                        "--output",
                        str(work / f"clone_{label}.wav"),
                        *gen,
                    ]
                ),
                needs=needs,
            )
        s.run("serve_engine_merged", lambda: serve_engine_loads(merged, device, sample), needs=(merged,))
        s.run(
            "eval",
            cli(
                [
                    "eval",
                    "--data",
                    short_json,
                    "--output_dir",
                    str(work / "eval"),
                    "--model_path",
                    model,
                    "--lora_path",
                    str(adapter),
                    "--audio_tokenizer",
                    "tiny",
                    "--max_samples",
                    "2",
                    "--speaker_encoder",
                    "none",
                    "--asr",
                    "none",
                    "--baseline_model",
                    "none",
                    "--max_new_tokens",
                    columns,
                    "--device",
                    device,
                    *infer_dtype,
                ]
            ),
            needs=(adapter,),
        )
    ddp_skip = None
    if cuda and torch.cuda.device_count() < 2:
        ddp_skip = "one GPU visible: NCCL runs one rank per GPU, and gpu-check measures one GPU"
    ddp = [
        "train",
        *common_train,
        "--max_steps",
        "2",
        "--output_dir",
        str(work / "train_ddp"),
        "--mixed_precision",
        "bf16" if cuda or ctx["cuda_choices"] else "no",
    ]
    s.run("torchrun_2_processes", lambda: torchrun_train(ddp, work / "torchrun.log"), skip=ddp_skip)
    return s.rows
