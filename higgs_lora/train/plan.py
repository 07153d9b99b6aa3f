"""Memory and time planner: parameter counts, memory, FLOPs and step time from a model config alone.

Torch-free: it reads the config as a dict (a folder's config.json, `tiny`, or the released
configuration shipped in the package for the default hub id) and counts from layer shapes,
so `higgs-lora plan` runs offline in milliseconds and the trainer's pre-flight memory check
(`train/memory_guard.py`) uses the very same estimate.

Parameters (exact; a test compares them with the real modules): Llama backbone (embeddings,
attention, text FFN, RMSNorms), the DualFFN audio FFN and its two norms on `audio_dual_ffn_layers`,
the audio codebook embeddings (codebooks x (codebook_size + 2) rows) and both heads. LoRA adds
r x (in + out) per adapted Linear/Embedding, matched by PEFT's suffix rule.

Memory (bytes, reported in GiB = 2**30 as torch.cuda.max_memory_allocated counts):
- weights: frozen base in bf16 (2 B/param) or fp32; LoRA parameters fp32 (PEFT upcasts adapters),
  their gradients fp32, AdamW's two moments fp32: 16 B per trainable parameter;
- activations, per micro-batch of B samples padded to L positions (the collator pads to the
  longest sample), with k of the n decoder layers checkpointed (the first k; 0 = none, n = all):
    B*L*(k*2h*cb + m*A_layer) + B*L^2*m*A_attn + logits,   m = max(n - k, [k > 0])
  Backward runs the n - k plain layers first, freeing what each kept, and only then recomputes the
  checkpointed ones one at a time, so the peak holds either the plain layers' activations or one
  recomputed layer, never both (k = n: every layer's input and one layer recomputed; k = n - 1
  already keeps a single layer's activations). A_layer counts the tensors a decoder layer keeps for
  backward per token (bf16 norms, attention and one FFN, since DualFFN routes each token through
  either the text or the audio FFN; fp32 copies of every LoRA input and the rank-r intermediates),
  scaled by ACTIVATION_CALIBRATION; A_attn = per head, the fp32 attention probabilities and their bf16 copy
  (SDPA falls back to its math kernel for the model's additive masks on unpadded lengths, so
  attention memory grows with L^2).
  logits = the heads' outputs, for the step that runs (`train.heads`): the text head on the
  labelled rows only (TEXT_ROWS_PER_SAMPLE per sample) and the audio head on the audio-out columns
  (at most every position: an upper bound), each logit in the model dtype, an fp32 copy in the loss
  and an fp32 gradient. `full_logits=True` gives upstream's step instead, the text head at every
  position (B*L*vocab): what the GPU calibration points in calibration.py ran, so the activation
  factor fitted there is fitted with that term and stays valid for the per-layer part.
  Calibrated against an H200 running the released shape (train/calibration.py: every figure with the
  precision scheme it ran under; a test holds the estimate within 25 % of each figure).

FLOPs per optimizer micro-step (matrix products only, 2 FLOPs per multiply-add):
    forward  = tokens * (2*N_active + 4*L*layers*heads*head_dim)
    backward = 2 * forward (input gradients through the frozen base + the small LoRA weight gradients)
    checkpointing adds one more forward of each checkpointed decoder layer.
N_active = parameters one token multiplies with: attention, one FFN, the LoRA branches and the
text head (128,256-wide for the released model). The text head (and its LoRA) counts on the labelled
rows only (TEXT_ROWS_PER_SAMPLE per sample, `train.heads`), or at every position with
`full_logits=True` (upstream's step, what the calibration points ran). Step time =
FLOPs / (peak bf16 FLOP/s x MFU), per GPU; DDP gradient all-reduce of the small LoRA tensors is
ignored.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from ..defaults import BASE_MODEL, DEFAULT_LORA_TARGETS, MODEL_REPO

# The GPU measurements (each with its precision scheme), the MFU and the activation factor fitted to
# them live in calibration.py, which also reads gpu-check reports to recalibrate.
from .calibration import ACTIVATION_CALIBRATION, CALIBRATION_POINTS, DEFAULT_MFU  # noqa: F401  (re-exported)
from .gpus import GPUS  # the card table; gpu_spec also takes a spec dict (--gpu_memory_gb)

GIB = 2**30
FRAMES_PER_SECOND = 25  # Higgs audio tokenizer: 25 code columns per second of audio
RELEASED_CONFIG = "released_config.json"  # higgs_lora/model/configs/, the released model's config.json

# Text targets per voice-cloning sample in the shifted loss: <|audio_out_bos|>, <|audio_eos|> and
# <|eot_id|> (the rows train.heads applies the text head to; tests/train/test_plan_step.py counts them).
TEXT_ROWS_PER_SAMPLE = 3

# Share of the card the estimate may use: the CUDA context, cuBLAS workspaces and the caching
# allocator's fragmentation are not in max_memory_allocated, which the estimate predicts.
USABLE_FRACTION = 0.9


# ---------------------------------------------------------------------------------------------
# Config and shapes


def released_config() -> dict:
    text = resources.files("higgs_lora.model").joinpath("configs", RELEASED_CONFIG).read_text(encoding="utf-8")
    return json.loads(text)


def load_config_dict(base_model: str) -> dict:
    """The model's config.json as a dict: `tiny`, a folder, the default hub id (shipped copy), or a
    hub id already in the local Hugging Face cache."""
    if base_model == "tiny":
        from ..model.tiny import ensure_tiny_model

        return json.loads((ensure_tiny_model() / "config.json").read_text(encoding="utf-8"))
    path = Path(base_model)
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise FileNotFoundError(f"{base_model}: folder has no config.json")
        return json.loads((path / "config.json").read_text(encoding="utf-8"))
    if path.suffix == ".json" and path.is_file():
        return json.loads(path.read_text(encoding="utf-8"))
    if base_model in (BASE_MODEL, MODEL_REPO):  # same shapes at every revision
        return released_config()
    from ..model.refs import parse_ref

    ref = parse_ref(base_model)
    try:
        from huggingface_hub import try_to_load_from_cache

        cached = try_to_load_from_cache(ref.repo, "config.json", revision=ref.revision)
    except Exception:  # not a valid repo id
        cached = None
    if isinstance(cached, str):
        return json.loads(Path(cached).read_text(encoding="utf-8"))
    raise FileNotFoundError(
        f"{base_model}: not a folder with config.json, not `tiny`, not {BASE_MODEL} "
        "and not in the local Hugging Face cache"
    )


@dataclass(frozen=True)
class ModelShape:
    hidden: int
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    intermediate: int
    vocab: int
    codebooks: int
    codebook_size: int  # with stream BOS and EOS (config value + 2)
    adapter_type: str
    dual_ffn_layers: tuple[int, ...]
    audio_self_attention: bool
    audio_out_embed_projector: bool

    @classmethod
    def from_config(cls, config: dict) -> "ModelShape":
        if not config.get("skip_audio_tower", True):
            raise ValueError(
                "the planner covers models without an audio tower (skip_audio_tower=true, "
                "as the released model); this config builds a Whisper tower"
            )
        text = config["text_config"]
        heads = text["num_attention_heads"]
        return cls(
            hidden=text["hidden_size"],
            layers=text["num_hidden_layers"],
            heads=heads,
            kv_heads=text.get("num_key_value_heads") or heads,
            head_dim=text.get("head_dim") or text["hidden_size"] // heads,
            intermediate=text["intermediate_size"],
            vocab=text["vocab_size"],
            codebooks=config.get("audio_num_codebooks", 12),
            codebook_size=config.get("audio_codebook_size", 1024) + 2,
            adapter_type=config.get("audio_adapter_type", "stack"),
            dual_ffn_layers=tuple(config.get("audio_dual_ffn_layers") or ()),
            audio_self_attention=bool(config.get("use_audio_out_self_attention", False)),
            audio_out_embed_projector=bool(config.get("use_audio_out_embed_projector", False)),
        )

    def dual_ffn(self, layer: int) -> bool:
        return self.adapter_type in ("dual_ffn", "dual_ffn_fast_forward") and layer in self.dual_ffn_layers


@dataclass(frozen=True)
class Weight:
    name: str  # module name as in HiggsAudioModel.named_modules()
    kind: str  # linear | embedding | norm
    fan_in: int  # linear: in_features; embedding: rows; norm: size
    fan_out: int  # linear: out_features; embedding: dim; norm: 1

    @property
    def numel(self) -> int:
        return self.fan_in * self.fan_out


def model_weights(shape: ModelShape) -> list[Weight]:
    """Every parameter-holding module of HiggsAudioModel (no audio tower), as boson builds it."""
    h, s = shape.hidden, shape
    out = [Weight("embed_tokens", "embedding", s.vocab, h)]

    def attention(prefix: str) -> list[Weight]:
        q, kv = s.heads * s.head_dim, s.kv_heads * s.head_dim
        return [
            Weight(f"{prefix}.q_proj", "linear", h, q),
            Weight(f"{prefix}.k_proj", "linear", h, kv),
            Weight(f"{prefix}.v_proj", "linear", h, kv),
            Weight(f"{prefix}.o_proj", "linear", q, h),
        ]

    def mlp(prefix: str) -> list[Weight]:
        # The audio FFN is LlamaMLP(text_config): text sizes, whatever audio_ffn_* say.
        return [
            Weight(f"{prefix}.gate_proj", "linear", h, s.intermediate),
            Weight(f"{prefix}.up_proj", "linear", h, s.intermediate),
            Weight(f"{prefix}.down_proj", "linear", s.intermediate, h),
        ]

    def norm(name: str) -> Weight:
        return Weight(name, "norm", h, 1)

    for i in range(s.layers):
        p = f"layers.{i}"
        out += attention(f"{p}.self_attn") + mlp(f"{p}.mlp")
        if s.dual_ffn(i):
            if s.audio_self_attention:
                out += attention(f"{p}.audio_attn") + [norm(f"{p}.audio_post_audio_attn_layer_norm")]
            out += mlp(f"{p}.audio_mlp") + [
                norm(f"{p}.audio_input_layernorm"),
                norm(f"{p}.audio_post_attention_layernorm"),
            ]
        out += [norm(f"{p}.input_layernorm"), norm(f"{p}.post_attention_layernorm")]
    out.append(norm("norm"))
    out += [
        Weight("audio_decoder_proj.text_lm_head", "linear", h, s.vocab),
        Weight("audio_decoder_proj.audio_lm_head", "linear", h, s.codebooks * s.codebook_size),
    ]
    if s.audio_out_embed_projector:
        out.append(Weight("audio_out_embed_projector", "linear", h, h))
    out.append(Weight("audio_codebook_embeddings", "embedding", s.codebooks * s.codebook_size, h))
    return out


def matches(name: str, target: str) -> bool:
    """PEFT's target_modules suffix rule."""
    return name == target or name.endswith("." + target)


def lora_modules(shape: ModelShape, targets: list[str] | None = None) -> list[Weight]:
    targets = list(DEFAULT_LORA_TARGETS if targets is None else targets)
    return [w for w in model_weights(shape) if w.kind != "norm" and any(matches(w.name, t) for t in targets)]


@dataclass(frozen=True)
class ParamCounts:
    total_base: int
    lora: int

    @property
    def total(self) -> int:  # what the trainer prints: base + LoRA
        return self.total_base + self.lora

    @property
    def trainable(self) -> int:
        return self.lora


def count_params(shape: ModelShape, lora_r: int = 0, targets: list[str] | None = None) -> ParamCounts:
    base = sum(w.numel for w in model_weights(shape))
    lora = sum(lora_r * (w.fan_in + w.fan_out) for w in lora_modules(shape, targets)) if lora_r else 0
    return ParamCounts(base, lora)


# ---------------------------------------------------------------------------------------------
# Memory


@dataclass(frozen=True)
class MemoryEstimate:
    weights: int
    lora_params: int
    lora_grads: int
    optimizer: int
    activations: int
    batch_size: int
    seq_len: int
    checkpointed_layers: int  # decoder layers recomputed in backward (0: checkpointing off)
    layers: int  # decoder layers of the model
    logits: int = 0  # the heads' share of `activations`
    full_logits: bool = False  # upstream's step (text logits at every position), not train.heads'

    @property
    def checkpointing(self) -> bool:
        return self.checkpointed_layers > 0

    def checkpointing_text(self) -> str:
        k, n = self.checkpointed_layers, self.layers
        return "off" if not k else ("on" if k == n else f"{k} of {n} layers")

    @property
    def total(self) -> int:
        return self.weights + self.lora_params + self.lora_grads + self.optimizer + self.activations

    def rows(self) -> list[tuple[str, int]]:
        return [
            ("base weights", self.weights),
            ("LoRA parameters (fp32)", self.lora_params),
            ("LoRA gradients (fp32)", self.lora_grads),
            ("AdamW state (fp32, 2 moments)", self.optimizer),
            (f"activations (checkpointing {self.checkpointing_text()})", self.activations),
            (f"  of which logits ({'every position' if self.full_logits else 'labelled rows'})", self.logits),
            ("peak estimate", self.total),
        ]


def layer_activation_bytes(shape: ModelShape, lora_r: int, targets: list[str] | None, compute_bytes: int) -> float:
    """Bytes one decoder layer keeps for backward per token (calibrated)."""
    s, h = shape, shape.hidden
    kv = s.kv_heads * s.head_dim
    # bf16 tensors: norms (input norms on both paths, post-attention norm: input, fp32 statistics
    # output cast back), q/k/v after RoPE, attention output, residuals; one FFN: gate, up, SiLU, product.
    counted = compute_bytes * (16 * h + 2 * kv + 4 * s.intermediate)
    # LoRA: PEFT casts each adapted input to fp32 and keeps it (dropout output) and the rank-r middle.
    layer0 = [w for w in lora_modules(shape, targets) if w.name.startswith("layers.0.")]
    ffn = [w for w in layer0 if ".mlp." in w.name or ".audio_mlp." in w.name]
    if any(".audio_mlp." in w.name for w in ffn) and any(".mlp." in w.name for w in ffn):
        ffn = [w for w in ffn if ".audio_mlp." in w.name]  # a token goes through one FFN only
    attn = [w for w in layer0 if w not in ffn and ".mlp." not in w.name and ".audio_mlp." not in w.name]
    if lora_r:
        counted += sum(4 * (w.fan_in + lora_r) for w in attn + ffn)
    return ACTIVATION_CALIBRATION * counted


def head_activation_bytes(
    shape: ModelShape, compute_bytes: int, batch_size: int, seq_len: int, full_logits: bool = False
) -> int:
    """The heads' outputs for one micro-batch: each logit in the model dtype + an fp32 copy in the loss
    + an fp32 gradient. Text: the labelled rows (TEXT_ROWS_PER_SAMPLE per sample, `train.heads`), or
    every position with `full_logits` (upstream's forward). Audio: codebooks x codebook_size per
    audio-out column, counted at every position (an upper bound; train.heads keeps the labelled ones)."""
    per_logit = compute_bytes + 4 + 4
    text_rows = batch_size * seq_len if full_logits else batch_size * min(TEXT_ROWS_PER_SAMPLE, seq_len)
    return per_logit * (text_rows * shape.vocab + batch_size * seq_len * shape.codebooks * shape.codebook_size)


def attention_quadratic_bytes(shape: ModelShape, compute_bytes: int) -> int:
    """Per (query, key) pair and layer: fp32 probabilities and their model-dtype copy, every head."""
    return shape.heads * (4 + compute_bytes)


def estimate_memory(
    shape: ModelShape,
    batch_size: int,
    seq_len: int,
    lora_r: int = 64,
    targets: list[str] | None = None,
    checkpointing: bool | int = False,
    weight_bytes: int = 2,
    full_logits: bool = False,
) -> MemoryEstimate:
    """Peak training memory of one micro-batch of `batch_size` samples padded to `seq_len` positions.

    `checkpointing`: True (every decoder layer), False, or how many layers (the first k, as
    `model.load.enable_activation_checkpointing` does). `weight_bytes`: 2 for bf16 weights and
    compute (mixed precision on CUDA), 4 for fp32. `full_logits`: upstream's step (calibration only).
    """
    if batch_size < 1 or seq_len < 1:
        raise ValueError(f"batch size and sequence length must be positive (got {batch_size}, {seq_len})")
    n = shape.layers
    k = n if checkpointing is True else int(checkpointing)
    if not 0 <= k <= n:
        raise ValueError(f"checkpointed layers must be within 0..{n} (got {k})")
    counts = count_params(shape, lora_r, targets)
    cb = weight_bytes
    tokens = batch_size * seq_len
    layer = layer_activation_bytes(shape, lora_r, targets, cb)
    head = head_activation_bytes(shape, cb, batch_size, seq_len, full_logits)
    quad = attention_quadratic_bytes(shape, cb) * batch_size * seq_len**2
    # Kept: the input of each checkpointed layer and the full activations of the n - k plain (later)
    # ones, which backward frees before it recomputes the first checkpointed layer (one at a time).
    full_layers = max(n - k, 1 if k else 0)
    acts = tokens * (full_layers * layer + k * shape.hidden * cb) + full_layers * quad + head
    return MemoryEstimate(
        weights=counts.total_base * weight_bytes,
        lora_params=4 * counts.lora,
        lora_grads=4 * counts.lora,
        optimizer=8 * counts.lora,
        activations=int(acts),
        batch_size=batch_size,
        seq_len=seq_len,
        checkpointed_layers=k,
        layers=n,
        logits=int(head),
        full_logits=full_logits,
    )


def layers_to_checkpoint(shape: ModelShape, batch_size: int, seq_len: int, capacity_bytes: float, **kw) -> int | None:
    """The fewest decoder layers to checkpoint for the micro-batch to fit (0: none needed), or None
    when it does not fit even with every layer checkpointed. Checkpointing one more layer saves
    A_layer - 2h*cb per token and its L^2 term, down to k = n - 1 (k = n saves nothing more)."""
    for k in range(shape.layers + 1):
        if fits(estimate_memory(shape, batch_size, seq_len, checkpointing=k, **kw), capacity_bytes):
            return k
    return None


# ---------------------------------------------------------------------------------------------
# FLOPs and time


def active_params_per_token(shape: ModelShape, lora_r: int = 0, targets: list[str] | None = None) -> int:
    """Weights one token multiplies with: attention + one FFN per layer, LoRA branches, the text head."""
    s, h = shape, shape.hidden
    q, kv = s.heads * s.head_dim, s.kv_heads * s.head_dim
    per_layer = h * q + 2 * h * kv + q * h + 3 * h * s.intermediate
    lora = 0
    if lora_r:
        mods = [
            w
            for w in lora_modules(shape, targets)
            if w.name.startswith("layers.0.") or not w.name.startswith("layers.")
        ]
        # a token sees one FFN: drop the audio FFN's adapters when the text FFN is adapted too
        if any(".mlp." in w.name for w in mods):
            mods = [w for w in mods if ".audio_mlp." not in w.name]
        in_layer = sum(lora_r * (w.fan_in + w.fan_out) for w in mods if w.name.startswith("layers."))
        heads = sum(lora_r * (w.fan_in + w.fan_out) for w in mods if w.name.endswith("text_lm_head"))
        lora = s.layers * in_layer + heads
    return s.layers * per_layer + h * s.vocab + lora


def text_head_params(shape: ModelShape, lora_r: int = 0, targets: list[str] | None = None) -> int:
    """The part of active_params_per_token that is the text head and its LoRA."""
    lora = (
        sum(lora_r * (w.fan_in + w.fan_out) for w in lora_modules(shape, targets) if w.name.endswith("text_lm_head"))
        if lora_r
        else 0
    )
    return shape.hidden * shape.vocab + lora


@dataclass(frozen=True)
class StepEstimate:
    flops: float  # per micro-batch, one GPU
    seconds: float
    tokens_per_s: float  # padded positions per second, one GPU
    samples_per_s: float


def estimate_step(
    shape: ModelShape,
    batch_size: int,
    seq_len: int,
    lora_r: int = 64,
    targets: list[str] | None = None,
    checkpointing: bool | int = False,
    gpu: str = "h200",
    mfu: float = DEFAULT_MFU,
    full_logits: bool = False,
) -> StepEstimate:
    """`checkpointing`: True (every layer), False or a layer count; each checkpointed layer runs its forward twice.
    `full_logits`: the text head at every position (upstream's step) instead of the labelled rows."""
    if not 0 < mfu <= 1:
        raise ValueError(f"MFU must be in (0, 1], got {mfu}")
    tokens = batch_size * seq_len
    head = text_head_params(shape, lora_r, targets)
    head_rows = tokens if full_logits else min(tokens, batch_size * TEXT_ROWS_PER_SAMPLE)
    attention = 4 * seq_len * shape.layers * shape.heads * shape.head_dim
    layers_forward = tokens * (2 * (active_params_per_token(shape, lora_r, targets) - head) + attention)
    forward = layers_forward + head_rows * 2 * head
    recomputed = shape.layers if checkpointing is True else int(checkpointing)
    flops = 3 * forward + layers_forward * recomputed / shape.layers
    seconds = flops / (gpu_spec(gpu)["peak_flops"] * mfu)
    return StepEstimate(flops, seconds, tokens / seconds, batch_size / seconds)


def gpu_spec(gpu: str | dict) -> dict:
    """A card by name, or a spec dict as given (gpus.gpu_with_memory: --gpu_memory_gb)."""
    if isinstance(gpu, dict):
        return gpu
    if gpu not in GPUS:
        raise ValueError(f"unknown GPU {gpu!r}; known: {', '.join(GPUS)}")
    return GPUS[gpu]


def fits(estimate: MemoryEstimate, capacity_bytes: float) -> bool:
    return estimate.total <= USABLE_FRACTION * capacity_bytes


# ---------------------------------------------------------------------------------------------
# The whole plan, as `higgs-lora plan` prints it


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


def seconds_to_columns(seconds: float, codebooks: int) -> int:
    """Sequence positions one clip of `seconds` takes: frames + stream BOS/EOS + delay pattern (codebooks - 1)."""
    import math

    return math.ceil(seconds * FRAMES_PER_SECOND) + codebooks + 1


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
        f"{active_params_per_token(s, plan.lora_r, plan.targets) / 1e9:.2f} G active params/token incl. the text head)",
        f"time at {plan.mfu:.0%} MFU of {spec['peak_flops'] / 1e12:.0f} TFLOP/s bf16: {st.seconds:.2f} s per micro-batch",
        f"throughput: {st.tokens_per_s:,.0f} tokens/s, {st.samples_per_s:.2f} samples/s per GPU; "
        f"{plan.gpus} GPU(s): {st.tokens_per_s * plan.gpus:,.0f} tokens/s, {st.samples_per_s * plan.gpus:.2f} samples/s",
        f"optimizer step: {plan.batch_size} x {plan.accumulation} accumulation x {plan.gpus} GPU(s) = "
        f"{plan.batch_size * plan.accumulation * plan.gpus} samples in {st.seconds * plan.accumulation:.2f} s "
        "(data-parallel all-reduce of the LoRA gradients not counted)",
    ]
    lines += [f"WARNING: {w}" for w in plan.warnings]
    return "\n".join(lines)
