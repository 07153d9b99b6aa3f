"""Peak training memory of one micro-batch, from the model's shape (torch-free).

Bytes, reported in GiB = 2**30 as torch.cuda.max_memory_allocated counts them:
- weights: the frozen base in bf16 (2 B/param) or fp32; per LoRA parameter 16 B (fp32 parameter and
  gradient, AdamW's two fp32 moments: PEFT upcasts adapters);
- activations of B samples padded to L positions (the collator pads to the longest), the first k of
  the n decoder layers checkpointed (0 = none, n = all):
    B*L*(k*2h*cb + m*A_layer) + B*L^2*m*A_attn + logits,   m = max(n - k, [k > 0])
  Backward runs the n - k plain layers first, freeing what each kept, then recomputes the
  checkpointed ones one at a time: the peak holds the plain layers' activations or one recomputed
  layer, never both. A_layer (`layer_activation_bytes`): what a decoder layer keeps per token (bf16
  norms, attention and one FFN, since DualFFN routes a token through one; fp32 copies of every LoRA
  input and the rank-r middles), times ACTIVATION_CALIBRATION. A_attn: fp32 attention probabilities
  and their model-dtype copy per head (SDPA's math kernel, which the model's additive masks get).
  logits (`head_activation_bytes`): the step that runs (`train.heads`), the text head on the labelled
  rows and the audio head on every position (an upper bound); `full_logits=True` counts upstream's
  step, the text head at every position.

ACTIVATION_CALIBRATION (train/calibration.py) is a factor fitted by hand to the six H200 peaks there,
all but one measured under a superseded precision scheme and all with upstream's step (estimated here
with `full_logits=True`); tests/train/test_memory_estimate.py holds the estimate within 25 % of each.
tests/train/test_plan_step.py compares it, within factors of 2 to 4, with the training step of a small
real model measured on CPU.
"""

from __future__ import annotations

from dataclasses import dataclass

from .calibration import ACTIVATION_CALIBRATION
from .model_shape import ModelShape, count_params, lora_modules
from .step_estimate import TEXT_ROWS_PER_SAMPLE

GIB = 2**30

# Share of the card the estimate may use: the CUDA context, cuBLAS workspaces and the caching
# allocator's fragmentation are not in max_memory_allocated, which the estimate predicts.
USABLE_FRACTION = 0.9


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


def fits(estimate: MemoryEstimate, capacity_bytes: float) -> bool:
    return estimate.total <= USABLE_FRACTION * capacity_bytes
