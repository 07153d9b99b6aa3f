"""A model's shape read from its config alone, and the parameters it holds (torch-free).

The config comes as a dict: a folder's config.json, `tiny`, a hub id in the local cache, or the
released model's config shipped in higgs_lora/model/configs/ for the default hub id, so the planner
runs offline in milliseconds.

Counted from layer shapes: the Llama backbone (embeddings, attention, text FFN, RMSNorms), the DualFFN
audio FFN and its norms on `audio_dual_ffn_layers`, the audio codebook embeddings
(codebooks x (codebook_size + 2) rows) and both heads. LoRA adds r x (in + out) per adapted
Linear/Embedding, matched by PEFT's suffix rule. tests/train/test_model_shape.py compares the counts
with the tiny model module by module, with PEFT's LoRA on it, and with the released model's total.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from ..defaults import BASE_MODEL, DEFAULT_LORA_TARGETS, MODEL_REPO

RELEASED_CONFIG = "released_config.json"  # higgs_lora/model/configs/, the released model's config.json


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


def decoder_params_per_token(shape: ModelShape, lora_r: int = 0, targets: list[str] | None = None) -> int:
    """Weights one position multiplies with in the decoder: attention + one FFN per layer and their LoRA branches."""
    s, h = shape, shape.hidden
    q, kv = s.heads * s.head_dim, s.kv_heads * s.head_dim
    per_layer = h * q + 2 * h * kv + q * h + 3 * h * s.intermediate
    lora = 0
    if lora_r:
        mods = [w for w in lora_modules(shape, targets) if w.name.startswith("layers.0.")]
        # a token sees one FFN: drop the audio FFN's adapters when the text FFN is adapted too
        if any(".mlp." in w.name for w in mods):
            mods = [w for w in mods if ".audio_mlp." not in w.name]
        lora = s.layers * sum(lora_r * (w.fan_in + w.fan_out) for w in mods)
    return s.layers * per_layer + lora


def text_head_params(shape: ModelShape, lora_r: int = 0, targets: list[str] | None = None) -> int:
    """The text head and its LoRA: what a position the head is applied to multiplies with on top."""
    lora = (
        sum(lora_r * (w.fan_in + w.fan_out) for w in lora_modules(shape, targets) if w.name.endswith("text_lm_head"))
        if lora_r
        else 0
    )
    return shape.hidden * shape.vocab + lora


def active_params_per_token(shape: ModelShape, lora_r: int = 0, targets: list[str] | None = None) -> int:
    """Weights one token multiplies with when the text head runs at every position (upstream's step)."""
    return decoder_params_per_token(shape, lora_r, targets) + text_head_params(shape, lora_r, targets)
