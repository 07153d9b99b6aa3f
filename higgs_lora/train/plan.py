"""The plan `higgs-lora plan` prints: parameters, memory with and without checkpointing, step time,
and a warning with advice when the micro-batch does not fit the card."""

from __future__ import annotations

from dataclasses import dataclass, field

from .calibration import DEFAULT_MFU
from .gpus import gpu_spec
from .memory_estimate import GIB, USABLE_FRACTION, MemoryEstimate, estimate_memory, fits, layers_to_checkpoint
from .model_shape import ModelShape, ParamCounts, count_params, decoder_params_per_token
from .step_estimate import TEXT_ROWS_PER_SAMPLE, StepEstimate, estimate_step


@dataclass
class Plan:
    shape: ModelShape
    counts: ParamCounts
    batch_size: int
    seq_len: int
    lora_r: int
    gpus: int
    gpu: str
    checkpointing: bool
    mfu: float
    weight_bytes: int
    memory: MemoryEstimate
    memory_other: MemoryEstimate  # the same plan with checkpointing flipped
    step: StepEstimate
    accumulation: int = 1
    warnings: list[str] = field(default_factory=list)
    targets: list[str] | None = None  # LoRA target suffixes (None: the defaults)


def make_plan(
    config: dict,
    batch_size: int,
    seq_len: int,
    lora_r: int = 64,
    gpus: int = 1,
    gpu: str = "h200",
    checkpointing: bool = False,
    targets: list[str] | None = None,
    mfu: float = DEFAULT_MFU,
    weight_bytes: int = 2,
    accumulation: int = 1,
) -> Plan:
    if gpus < 1 or accumulation < 1 or lora_r < 0:
        raise ValueError(
            f"--gpus and --gradient_accumulation_steps must be at least 1 and --lora_r at least 0 "
            f"(got {gpus}, {accumulation}, {lora_r})"
        )
    shape = ModelShape.from_config(config)
    spec = gpu_spec(gpu)
    kw = dict(lora_r=lora_r, targets=targets, weight_bytes=weight_bytes)
    mem = estimate_memory(shape, batch_size, seq_len, checkpointing=checkpointing, **kw)
    other = estimate_memory(shape, batch_size, seq_len, checkpointing=not checkpointing, **kw)
    plan = Plan(
        shape,
        count_params(shape, lora_r, targets),
        batch_size,
        seq_len,
        lora_r,
        gpus,
        gpu,
        checkpointing,
        mfu,
        weight_bytes,
        mem,
        other,
        estimate_step(shape, batch_size, seq_len, lora_r, targets, checkpointing, gpu, mfu),
        accumulation,
        targets=targets,
    )
    capacity = spec["memory_gib"] * GIB
    if not fits(mem, capacity):
        needed = None if checkpointing else layers_to_checkpoint(shape, batch_size, seq_len, capacity, **kw)
        advice = (
            f"turn on --use_gradient_checkpointing (train's default `auto` checkpoints the {needed} of "
            f"{shape.layers} layers this needs)"
            if needed
            else "lower --batch_size or --seq_len (see --max_audio_seconds)"
        )
        plan.warnings.append(
            f"does not fit: the estimated peak {mem.total / GIB:.1f} GiB exceeds "
            f"{USABLE_FRACTION:.0%} of the {spec['name']}'s {spec['memory_gib']} GiB; {advice}"
        )
    return plan


def format_plan(plan: Plan) -> str:
    s, c, m = plan.shape, plan.counts, plan.memory
    spec = gpu_spec(plan.gpu)
    gb = lambda b: f"{b / GIB:8.2f} GiB"  # noqa: E731
    lines = [
        f"model: {s.layers} layers, hidden {s.hidden}, {s.heads} heads ({s.kv_heads} KV), FFN {s.intermediate}, "
        f"vocab {s.vocab:,}, {s.codebooks} codebooks x {s.codebook_size}, DualFFN on {len(s.dual_ffn_layers)} layers",
        f"parameters: total {c.total:,} (base {c.total_base:,} + LoRA {c.lora:,})",
        f"trainable:  {c.trainable:,} ({100 * c.trainable / c.total:.2f}%) at LoRA r={plan.lora_r}",
        f"micro-batch: {plan.batch_size} x {plan.seq_len} positions (padded) = {plan.batch_size * plan.seq_len:,} per GPU",
        f"memory per GPU ({'bf16' if plan.weight_bytes == 2 else 'fp32'} weights; GiB = 2^30 bytes):",
    ]
    lines += [f"  {name:<38}{gb(value)}" for name, value in m.rows()]
    o = plan.memory_other
    lines.append(
        f"  (checkpointing {o.checkpointing_text()}: activations {o.activations / GIB:.2f} GiB, "
        f"peak {o.total / GIB:.2f} GiB)"
    )
    lines.append(
        f"  {spec['name']}: {spec['memory_gib']} GiB, {USABLE_FRACTION:.0%} usable -> "
        f"{'fits' if fits(m, spec['memory_gib'] * GIB) else 'DOES NOT FIT'} "
        f"(headroom {(USABLE_FRACTION * spec['memory_gib'] * GIB - m.total) / GIB:.1f} GiB)"
    )
    st = plan.step
    lines += [
        f"FLOPs per micro-batch per GPU: {st.flops / 1e12:.1f} TFLOP "
        f"(3 x forward{' + recomputed forward' if plan.checkpointing else ''}; "
        f"{decoder_params_per_token(s, plan.lora_r, plan.targets) / 1e9:.2f} G active params/token"
        f" + the text head on {TEXT_ROWS_PER_SAMPLE} labelled rows per sample)",
        f"time at {plan.mfu:.0%} MFU of {spec['peak_flops'] / 1e12:.0f} TFLOP/s bf16: {st.seconds:.2f} s per micro-batch",
        f"throughput: {st.tokens_per_s:,.0f} tokens/s, {st.samples_per_s:.2f} samples/s per GPU; "
        f"{plan.gpus} GPU(s): {st.tokens_per_s * plan.gpus:,.0f} tokens/s, {st.samples_per_s * plan.gpus:.2f} samples/s",
        f"optimizer step: {plan.batch_size} x {plan.accumulation} accumulation x {plan.gpus} GPU(s) = "
        f"{plan.batch_size * plan.accumulation * plan.gpus} samples in {st.seconds * plan.accumulation:.2f} s "
        "(data-parallel all-reduce of the LoRA gradients not counted)",
    ]
    lines += [f"WARNING: {w}" for w in plan.warnings]
    return "\n".join(lines)
