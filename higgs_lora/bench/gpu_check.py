"""gpu-check: the released architecture (random weights) through this project's own code on one GPU.

Offline: the model is the released configuration shipped in this package (`released_config.json`,
5,771,283,456 parameters: Llama-3.2-3B backbone with DualFFN on all 28 layers, 8 codebooks) with
random weights, written once as a model folder and loaded through `load_model` as a user's model is
(`bench/random_model.py`: same attention implementation, reported in the JSON); the tokenizer is the
tiny kit's byte-level one with the config's special-token ids remapped onto it, so compute and memory
per token match the real model. Phases, all through the project's code paths:

- train: `train.recipe.train` (Trainer, precision scheme, LoRA r=64) at batch 4 without and with
  activation checkpointing, and on a long pair (batch 2, each 30 s reference + 30 s target):
  median step time, non-pad tokens/s, samples/s, peak memory over the timed steps, MFU estimate;
- infer: `infer.engine.VoiceCloner` as users serve it: base + an unmerged fp32 LoRA adapter, the
  engine's cache choice (static KV cache + CUDA graphs on CUDA), the real codec class (random weights)
  on CUDA; generated columns/s, real-time factor, and codec decode time reported separately;
- alignment: `checks.run.run_checks` (prompt parity, label audit, teacher-forced overfit through the
  training path).

`shape="small"` runs the same phases at a scaled-down shape (CPU, a minute or two).
`force_cuda_choices=True` makes a CPU run take the paths CUDA takes where a CPU can run them (static
KV cache, bf16 autocast), so a CPU test exercises them. `bench/full.py` (`gpu-check --full`) drives the
CLI commands themselves.
"""

from __future__ import annotations

import contextlib
import gc
import json
import math
import statistics
import tempfile
import time
import traceback
from pathlib import Path

import torch

from ..constants import (
    FLOPS_PER_MULTIPLY_ADD,
    peak_flops_for,
    training_flops,
)
from ..model import tiny
from ..model.precision import Precision, resolve_precision
from .random_model import (  # noqa: F401
    SHAPES,
    attention_implementation,
    build_config,
    build_meta_model,
    load_check_model,
    release,
    write_model_folder,
)
from .samples import make_samples, write_chatml

FLOP_FORMULA = (
    "FLOPs per token = 3 x 2 x active parameters, the planner's convention (2 per multiply-add in the "
    "forward, the backward counted as twice the forward; attention scores and checkpointing's recomputed "
    "forward are left out). "
    "Active parameters: every non-embedding parameter except the FFN branch a token does not take "
    "(text tokens use the text MLP, audio tokens the DualFFN audio MLP), weighted by the batch's share "
    "of audio positions, counted on the built model. MFU = FLOPs per token x tokens/s / GPU peak."
)
# Per shape: clip lengths (s), text length (chars), steps, generated columns, alignment fit budget.
PLANS = {
    "released": dict(
        normal=(16, (6, 10), (6, 14), (60, 160)),
        long=(2, (30, 30), (30, 30), (300, 400)),
        short=(2, (3, 4), (2, 3), (20, 40)),
        steps=10,
        long_steps=4,
        columns=300,
        workers=2,
        align=dict(max_steps=100, check_every=5),
    ),
    "small": dict(
        normal=(4, (1, 2), (1, 2), (10, 30)),
        long=(2, (4, 4), (4, 4), (40, 60)),
        short=(2, (1, 1.5), (1, 1.5), (10, 20)),
        steps=3,
        long_steps=2,
        columns=24,
        workers=0,
        align=dict(max_steps=60, check_every=10),
    ),
}


def parameter_groups(model) -> dict:
    """Exact parameter counts of the built model by role (for the FLOP estimate)."""
    groups = {"total": 0, "embeddings": 0, "text_mlp": 0, "audio_mlp": 0, "audio_head": 0, "text_head": 0}
    for name, p in model.named_parameters():
        n = p.numel()
        groups["total"] += n
        if "embed_tokens" in name or "audio_codebook_embeddings" in name:
            groups["embeddings"] += n
        elif ".audio_mlp." in name:
            groups["audio_mlp"] += n
        elif ".mlp." in name:
            groups["text_mlp"] += n
        elif "audio_lm_head" in name:
            groups["audio_head"] += n
        elif "text_lm_head" in name:
            groups["text_head"] += n
    # The config says tie_word_embeddings, yet HiggsAudioModel builds its own text_lm_head (it cannot
    # tie: get_input_embeddings raises), counted above with the per-position parameters. Only a head
    # really sharing the embedding matrix (listed once, as an embedding) is added back.
    head = getattr(getattr(model, "audio_decoder_proj", None), "text_lm_head", None)
    if head is not None and head.weight is model.embed_tokens.weight:
        groups["tied_text_head"] = head.weight.numel()
    return groups


def active_params_per_token(groups: dict, audio_share: float, text_head_share: float = 1.0) -> float:
    """Weights the mean position multiplies with: `audio_share` of positions go through the audio FFN and
    head, the rest through the text FFN; the text head runs on `text_head_share` of them (train.heads:
    the labelled rows only; 1.0 is upstream's head at every position)."""
    head = groups.get("text_head", 0) + groups.get("tied_text_head", 0)
    shared = (
        groups["total"]
        - groups["embeddings"]
        - groups["text_mlp"]
        - groups["audio_mlp"]
        - groups["audio_head"]
        - groups.get("text_head", 0)
    )
    return (
        shared
        + text_head_share * head
        + (1 - audio_share) * groups["text_mlp"]
        + audio_share * (groups["audio_mlp"] + groups["audio_head"])
    )


# --- phases -----------------------------------------------------------------------------------------


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _peak_gb(device: str):
    return round(torch.cuda.max_memory_allocated() / 2**30, 2) if device.startswith("cuda") else None


def _reset_peak(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()


def step_timer(device: str):
    from transformers import TrainerCallback

    class StepTimer(TrainerCallback):
        """Wall time of every optimizer step (synchronised), the peak memory over the steps, and the
        dataset the run trained on.

        The peak counter is reset when training begins (model, optimizer state and data are in place)
        and read after every step; the maximum of those reads is the steps' peak whatever else happens
        in between (logging, evaluation) as long as nothing resets the counter, which training's own
        memory log no longer does."""

        def __init__(self):
            self.times, self.dataset, self.peak_bytes = [], None, None

        def on_train_begin(self, args, state, control, train_dataloader=None, **kwargs):
            self.dataset = getattr(train_dataloader, "dataset", None)
            _reset_peak(device)

        def on_step_begin(self, *args, **kwargs):
            _sync(device)
            self._t = time.perf_counter()

        def on_step_end(self, *args, **kwargs):
            _sync(device)
            self.times.append(time.perf_counter() - self._t)
            if device.startswith("cuda"):
                self.peak_bytes = max(self.peak_bytes or 0, torch.cuda.max_memory_allocated())

        @property
        def peak_gb(self):
            return None if self.peak_bytes is None else round(self.peak_bytes / 2**30, 2)

    return StepTimer()


def _audio_share(dataset) -> tuple[float, float]:
    """Mean sequence length the model sees per sample, and the share of it that is audio columns."""
    lengths = dataset.lengths()
    text = [int(dataset[i].input_ids.shape[0]) for i in range(len(dataset))]  # placeholders count as text here
    audio = [total - t for total, t in zip(lengths, text)]
    return sum(lengths) / len(lengths), sum(audio) / max(1, sum(lengths))


def train_phase(name: str, ctx: dict, data: str, batch_size: int, steps: int, checkpointing: bool) -> dict:
    from ..train.recipe import TrainConfig, train
    from ..train.step_estimate import TEXT_ROWS_PER_SAMPLE

    device, precision = ctx["device"], ctx["precision"]
    model = load_check_model(ctx["model_dir"], device, precision.weights_dtype)
    attention = attention_implementation(model)
    timer = step_timer(device)
    out = Path(ctx["workdir"]) / name
    # base_model names the folder the model was loaded from, so the commands train prints next can run.
    cfg = TrainConfig(
        train_data=data,
        output_dir=str(out),
        base_model=str(ctx["model_dir"]),
        audio_tokenizer="tiny",
        batch_size=batch_size,
        gradient_accumulation_steps=1,
        max_steps=steps,
        logging_steps=1,
        save_steps=10**9,
        lora_r=64,
        lora_alpha=128,
        use_gradient_checkpointing=checkpointing,
        dataloader_num_workers=ctx["workers"],
        report_to="none",
        learning_rate=5e-4,
        mixed_precision=precision.name,
        warmup_ratio=0.0,
    )
    t0 = time.time()
    train(cfg, model=model, tokenizer=ctx["tokenizer"], callbacks=[timer])
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines() if line.strip()]
    warm = timer.times[2:] or timer.times  # the first steps include allocator and kernel warm-up
    step_s = statistics.median(warm)
    mean_len, audio_share = _audio_share(timer.dataset)
    tokens = mean_len * batch_size
    active = active_params_per_token(ctx["groups"], audio_share, min(1.0, TEXT_ROWS_PER_SAMPLE / mean_len))
    flops = training_flops(FLOPS_PER_MULTIPLY_ADD * active * tokens) / step_s
    peak = ctx["peak_flops"]
    row = {
        "phase": name,
        "batch": batch_size,
        "checkpointing": checkpointing,
        "steps": len(timer.times),
        "median_step_s": round(step_s, 4),
        "tokens_per_step": round(tokens),
        "tokens_per_s": round(tokens / step_s),
        "samples_per_s": round(batch_size / step_s, 2),
        "peak_memory_gb": timer.peak_gb,
        "longest_sample": max(timer.dataset.lengths()),
        "attention": attention,
        "audio_share": round(audio_share, 3),
        "active_params": round(active),
        "tflops": round(flops / 1e12, 2),
        "mfu": round(flops / peak, 4) if peak else None,
        "first_loss": rows[0].get("loss") if rows else None,
        "last_loss": rows[-1].get("loss") if rows else None,
        "wall_s": round(time.time() - t0, 1),
    }
    del model
    return row


def alignment_phase(ctx: dict) -> dict:
    from ..checks.run import run_checks
    from ..data.codes import TinyCodec

    device, precision = ctx["device"], ctx["precision"]
    model = load_check_model(
        ctx["model_dir"], device, precision.weights_dtype
    )  # the fit (train's recipe) adds the LoRA
    t0 = time.time()
    report = run_checks(
        ctx["short"],
        model,
        ctx["tokenizer"],
        TinyCodec(),
        mode="teacher_forced",
        precision=precision,
        log=ctx["log"],
        **ctx["plan"]["align"],
    )
    data = report.to_json()
    del model
    fit = next((c for c in report.checks if c.name.startswith("overfit")), None)
    settings = data.get("overfit") or {}
    return {
        "ok": data["ok"],
        "seconds": round(time.time() - t0, 1),
        "params": f"LoRA r={settings.get('lora_r')}",
        "settings": settings or None,
        "checks": {k: {"ok": v["ok"], "summary": v["summary"]} for k, v in data["checks"].items()},
        "history": fit.details.get("history") if fit else None,
    }


def device_info(device: str) -> dict:
    info = {"device": device, "torch": torch.__version__}
    if device.startswith("cuda"):
        props = torch.cuda.get_device_properties(torch.device(device))
        info.update(name=props.name, memory_gb=round(props.total_memory / 2**30, 1), cuda=torch.version.cuda)
    else:
        info.update(name="cpu", threads=torch.get_num_threads())
    import transformers

    info["transformers"] = transformers.__version__
    return info


def run_gpu_check(
    shape: str = "released",
    output: str | Path | None = None,
    device: str | None = None,
    mixed_precision: str | None = None,
    steps: int | None = None,
    phases=("train", "infer", "alignment"),
    full: bool = False,
    cuda_choices: bool | None = None,
    workdir: str | Path | None = None,
    log=print,
) -> dict:
    """Run the phases (and with `full`, every CLI command as a step, see `bench/full.py`), print a table,
    write the JSON report to `output` (if given) and return it.

    `cuda_choices` (default: with `full` on a CPU): take CUDA's paths where a CPU can run them (static KV
    cache, bf16 autocast when no --mixed_precision is given). `workdir`: keep the model folder, data,
    adapters and outputs there (by default a temporary folder, removed at the end)."""
    if shape not in SHAPES:
        raise ValueError(f"--shape {shape!r}: use one of {', '.join(SHAPES)}")
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    if shape == "released" and not device.startswith("cuda"):
        raise ValueError(
            "gpu-check --shape released needs a CUDA GPU (the model is 5.8B parameters); "
            "--shape small runs the same phases on CPU"
        )
    t_start = time.time()
    plan = dict(PLANS[shape])
    if steps:
        plan.update(steps=steps, long_steps=min(steps, plan["long_steps"]))
    cuda = device.startswith("cuda")
    if cuda_choices is None:
        cuda_choices = full and not cuda
    if cuda_choices and not cuda and mixed_precision in (None, "auto"):
        mixed_precision = "bf16"  # CUDA's default scheme; a CPU runs bf16 autocast too
    precision: Precision = resolve_precision(mixed_precision, device)
    config = build_config(shape)
    info = device_info(device)
    report: dict = {
        "shape": shape,
        "device": info,
        "precision": precision.name,
        "flop_formula": FLOP_FORMULA,
        "peak_flops": peak_flops_for(info.get("name", "")),
        "cuda_choices_on_cpu": bool(cuda_choices and not cuda),
        "attention": None,
        "train": [],
        "infer": None,
        "alignment": None,
    }
    with (
        contextlib.nullcontext(workdir) if workdir else tempfile.TemporaryDirectory(prefix="higgs_lora_gpu_check_")
    ) as tmp:
        work = Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        ctx = {
            "device": device,
            "precision": precision,
            "config": config,
            "tokenizer": tiny.build_tokenizer(),
            "workdir": work,
            "workers": plan["workers"],
            "peak_flops": report["peak_flops"],
            "plan": plan,
            "log": log,
            "cache": "static" if cuda_choices else "auto",
        }
        ctx["groups"] = parameter_groups(build_meta_model(config))
        report["parameters"] = ctx["groups"]
        log(f"gpu-check: {shape} shape, {ctx['groups']['total']:,} parameters, {precision.name}, on {info.get('name')}")
        t0 = time.time()
        ctx["model_dir"] = write_model_folder(config, work / "model", device, precision.weights_dtype)
        report["model_folder_s"] = round(time.time() - t0, 1)
        normal = write_chatml(make_samples(work, "n", plan["normal"], 0), work / "normal.json")
        long = write_chatml(make_samples(work, "l", plan["long"], 1), work / "long.json")
        ctx["short"] = make_samples(work, "s", plan["short"], 2)

        def attempt(label, fn):
            log(f"-- {label}")
            try:
                return fn()
            except Exception as e:  # one failed phase (e.g. out of memory) must not hide the others
                if device.startswith("cuda"):
                    torch.cuda.empty_cache()
                return {
                    "phase": label,
                    "ok": False,
                    "error": f"{type(e).__name__}: {e}"[:2000],
                    "traceback": traceback.format_exc()[-3000:],
                }
            finally:
                gc.collect()

        if "train" in phases:
            for name, data, bs, n, ckpt in (
                ("batch4", normal, 4, plan["steps"], False),
                ("batch4_checkpointing", normal, 4, plan["steps"], True),
                ("long_pair_checkpointing", long, 2, plan["long_steps"], True),
            ):
                report["train"].append(attempt(name, lambda: train_phase(name, ctx, data, bs, n, ckpt)))
        if "infer" in phases:
            from .inference import infer_phase

            report["infer"] = attempt("infer", lambda: infer_phase(ctx, plan["columns"]))
        if "alignment" in phases:
            report["alignment"] = attempt("alignment", lambda: alignment_phase(ctx))
        if full:
            from .full import run_steps

            report["steps"] = run_steps(
                {
                    **ctx,
                    "normal": normal,
                    "columns": plan["columns"],
                    "steps": min(plan["steps"], 3),
                    "cuda_choices": cuda_choices,
                },
                log=log,
            )
        measured = [r for r in [*report["train"], report["infer"] or {}] if r.get("attention")]
        report["attention"] = measured[0]["attention"] if measured else None
    report["total_s"] = round(time.time() - t_start, 1)
    log(table(report))
    if output:
        Path(output).parent.mkdir(parents=True, exist_ok=True)
        Path(output).write_text(json.dumps(report, indent=2, ensure_ascii=False, default=str), encoding="utf-8")
        log(f"report written to {output}")
    return report


def _fmt(v, spec=""):
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    return format(v, spec)


def table(report: dict) -> str:
    d = report["device"]
    lines = [
        f"gpu-check ({report['shape']} shape, {report['parameters']['total']:,} params, {report['precision']}) "
        f"on {d.get('name')}: {report['total_s']} s"
    ]
    if report["train"]:
        lines.append(f"{'train':<26}{'step s':>8}{'tok/s':>9}{'samp/s':>8}{'peak GB':>9}{'TFLOP/s':>9}{'MFU':>7}")
    for r in report["train"]:
        if "median_step_s" not in r:
            lines.append(f"{r.get('phase', '?'):<26}FAILED: {r.get('error', '')[:90]}")
            continue
        lines.append(
            f"{r['phase']:<26}{r['median_step_s']:>8.3f}{r['tokens_per_s']:>9,}{r['samples_per_s']:>8.2f}"
            f"{_fmt(r['peak_memory_gb'], '.1f'):>9}{r['tflops']:>9.1f}{_fmt(r['mfu'], '.1%'):>7}"
        )
    inf = report.get("infer")
    if inf:
        lines.append(
            "infer: FAILED: " + inf["error"][:90]
            if "error" in inf
            else f"infer ({inf['adapter']} {inf['adapter_dtype']} adapter on {inf['base_dtype']}, {inf['cache']} cache"
            f"{', CUDA graphs' if inf['cuda_graphs'] else ''}): {inf['generated_columns']} columns in "
            f"{inf['seconds']} s = {inf['columns_per_s']} columns/s, {inf['realtime_factor']}x real time; "
            f"{inf['codec']} decode of {inf['decoded_columns']} columns {inf['decode_seconds']} s"
        )
    if report.get("attention"):
        lines.append(f"attention: {report['attention']}")
    al = report.get("alignment")
    if al:
        if "error" in al:
            lines.append("alignment: FAILED: " + al["error"][:90])
        else:
            s = al["settings"] or {}
            lines.append(
                f"alignment: {'OK' if al['ok'] else 'FAILED'} in {al['seconds']} s ({s.get('mode')}, {al['params']} weights, "
                f"lr {s.get('learning_rate')}, {s.get('precision')})"
            )
            lines += [f"  [{'PASS' if c['ok'] else 'FAIL'}] {k}: {c['summary']}" for k, c in al["checks"].items()]
    if report.get("steps"):
        lines.append("steps (--full: each CLI command once):")
    for st in report.get("steps", []):
        state = "PASS" if st["ok"] else ("skip" if st.get("skipped") else "FAIL")
        mem = f", peak {st['peak_memory_gb']} GB" if st.get("peak_memory_gb") is not None else ""
        lines.append(
            f"  [{state}] {st['name']} ({st['seconds']} s{mem})" + (f": {st['error'][:100]}" if st["error"] else "")
        )
    return "\n".join(lines)
