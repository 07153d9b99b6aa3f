"""The audio tokenizer between boson's layout (`config.json` + `model.pth`, HuBERT loaded by name) and
native `HiggsAudioV2TokenizerModel` (`config.json` + `model.safetensors`, HuBERT inside).

Two things change besides names:
- boson's DAC convolutions are weight-normalised (`weight_g`, `weight_v`); native stores the plain
  `weight = g * v / ||v||`. Going back stores `v = weight`, `g = ||weight||`, which gives the same
  weight up to float rounding (the codec's tensors are not bit-identical after a round trip; the
  language model's are).
- native carries the HuBERT semantic teacher inside the codec (`semantic_model.*`) and its config in
  `semantic_model_config`; boson loads it by name, so an import writes it to `semantic_teacher/`,
  where this project's codec loader looks first (model/resolve.py).
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import tempfile
from pathlib import Path

import torch

log = logging.getLogger(__name__)

_INNER = ["snake1", "conv1", "snake2", "conv2"]
SEMANTIC_PREFIX = "semantic_model."
IMPORT_SUFFIX = ".boson"


def _to_native_name(name: str, n_blocks: int) -> str:
    if name.startswith(SEMANTIC_PREFIX):
        return name
    m = re.match(r"^encoder\.block\.(\d+)\.(.*)$", name)
    if m:
        i, rest = int(m[1]), m[2]
        if i == 0:
            return f"acoustic_encoder.conv1.{rest}"
        if i == n_blocks + 1:
            return f"acoustic_encoder.snake1.{rest}"
        if i == n_blocks + 2:
            return f"acoustic_encoder.conv2.{rest}"
        r = re.match(r"^block\.([012])\.block\.([0123])\.(.*)$", rest)
        if r:
            return f"acoustic_encoder.block.{i - 1}.res_unit{int(r[1]) + 1}.{_INNER[int(r[2])]}.{r[3]}"
        r = re.match(r"^block\.([34])\.(.*)$", rest)
        if r:
            return f"acoustic_encoder.block.{i - 1}.{'snake1' if r[1] == '3' else 'conv1'}.{r[2]}"
    m = re.match(r"^decoder_2\.model\.(\d+)\.(.*)$", name)
    if m:
        i, rest = int(m[1]), m[2]
        if i == 0:
            return f"acoustic_decoder.conv1.{rest}"
        if i == n_blocks + 1:
            return f"acoustic_decoder.snake1.{rest}"
        if i == n_blocks + 2:
            return f"acoustic_decoder.conv2.{rest}"
        r = re.match(r"^block\.([01])\.(.*)$", rest)
        if r:
            return f"acoustic_decoder.block.{i - 1}.{'snake1' if r[1] == '0' else 'conv_t1'}.{r[2]}"
        r = re.match(r"^block\.([234])\.block\.([0123])\.(.*)$", rest)
        if r:
            return f"acoustic_decoder.block.{i - 1}.res_unit{int(r[1]) - 1}.{_INNER[int(r[2])]}.{r[3]}"
    m = re.match(r"^quantizer\.vq\.layers\.(\d+)\.(_codebook\.)?(.*)$", name)
    if m:
        return f"quantizer.quantizers.{m[1]}.{'codebook.' if m[2] else ''}{m[3]}"
    for old, new in (("fc_prior.", "fc."), ("fc_post1.", "fc1."), ("fc_post2.", "fc2.")):
        if name.startswith(old):
            return new + name[len(old) :]
    if name.startswith(("encoder_semantic.", "decoder_semantic.")):
        return re.sub(r"\.(conv|conv1|conv2)\.conv\.", r".\1.", name)
    raise KeyError(f"codec weight {name!r} has no native counterpart")


def _to_boson_name(name: str, n_blocks: int) -> str:
    if name.startswith(SEMANTIC_PREFIX):
        return name
    inner = {v: k for k, v in enumerate(_INNER)}
    for side, root in (("encoder", "encoder.block"), ("decoder", "decoder_2.model")):
        m = re.match(rf"^acoustic_{side}\.(conv1|snake1|conv2)\.(.*)$", name)
        if m:
            i = {"conv1": 0, "snake1": n_blocks + 1, "conv2": n_blocks + 2}[m[1]]
            return f"{root}.{i}.{m[2]}"
        m = re.match(rf"^acoustic_{side}\.block\.(\d+)\.res_unit(\d)\.(\w+)\.(.*)$", name)
        if m:
            r = int(m[2]) - 1 if side == "encoder" else int(m[2]) + 1
            return f"{root}.{int(m[1]) + 1}.block.{r}.block.{inner[m[3]]}.{m[4]}"
        m = re.match(rf"^acoustic_{side}\.block\.(\d+)\.(snake1|conv1|conv_t1)\.(.*)$", name)
        if m:
            k = {"encoder": {"snake1": 3, "conv1": 4}, "decoder": {"snake1": 0, "conv_t1": 1}}[side][m[2]]
            return f"{root}.{int(m[1]) + 1}.block.{k}.{m[3]}"
    m = re.match(r"^quantizer\.quantizers\.(\d+)\.(codebook\.)?(.*)$", name)
    if m:
        return f"quantizer.vq.layers.{m[1]}.{'_codebook.' if m[2] else ''}{m[3]}"
    for old, new in (("fc.", "fc_prior."), ("fc1.", "fc_post1."), ("fc2.", "fc_post2.")):
        if name.startswith(old):
            return new + name[len(old) :]
    if name.startswith(("encoder_semantic.", "decoder_semantic.")):
        return (
            re.sub(r"\.(conv|conv1|conv2)\.(weight|bias)$", r".\1.conv.\2", name)
            if not re.search(r"res_units\.\d+\.conv2\.", name)
            else name
        )
    raise KeyError(f"native codec weight {name!r} has no boson counterpart")


def _norm(v: torch.Tensor) -> torch.Tensor:
    return v.norm(dim=list(range(1, v.dim())), keepdim=True)


def state_to_native(state: dict, n_blocks: int) -> dict:
    out = {}
    for name, value in state.items():
        if name.endswith(".weight_v"):
            continue
        if name.endswith(".weight_g"):
            base = name[: -len("_g")]
            v = state[base + "_v"]
            out[_to_native_name(base, n_blocks)] = value * v / _norm(v)
        else:
            out[_to_native_name(name, n_blocks)] = value
    return out


def state_to_boson(state: dict, n_blocks: int) -> dict:
    out = {}
    for name, value in state.items():
        boson = _to_boson_name(name, n_blocks)
        if (
            name.startswith(("acoustic_encoder.", "acoustic_decoder."))
            and name.endswith(".weight")
            and value.dim() == 3
        ):
            out[boson + "_g"] = _norm(value)
            out[boson + "_v"] = value.clone()
        else:
            out[boson] = value
    return out


def _frame_rate(sample_rate: int, ratios) -> int:
    hop = 1
    for r in ratios:
        hop *= r
    return -(-sample_rate // hop)


def config_to_native(boson: dict, semantic: dict, encoder_hidden: int, decoder_hidden: int) -> dict:
    ratios = list(boson["ratios"])
    # Native builds (and encodes with) as many quantizers as its top bandwidth pays for; boson builds n_q
    # and caps a larger bandwidth at n_q. So the top native bandwidth is the one that pays for exactly n_q.
    bits = max(1, (int(boson["bins"]) - 1).bit_length())
    top = boson["n_q"] * _frame_rate(boson["sample_rate"], ratios) * bits / 1000
    bandwidths = [b for b in boson["target_bandwidths"] if b < top] + [int(top) if float(top).is_integer() else top]
    return {
        "model_type": "higgs_audio_v2_tokenizer",
        "architectures": ["HiggsAudioV2TokenizerModel"],
        "target_bandwidths": bandwidths,
        "sample_rate": boson["sample_rate"],
        "codebook_size": boson["bins"],
        "codebook_dim": boson["codebook_dim"],
        "acoustic_model_config": {
            "model_type": "dac",
            "encoder_hidden_size": encoder_hidden,
            "downsampling_ratios": ratios,
            "upsampling_ratios": ratios,
            "decoder_hidden_size": decoder_hidden,
            "hidden_size": boson["D"],
            "codebook_size": boson["bins"],
            "codebook_dim": boson["codebook_dim"],
            "sampling_rate": boson["sample_rate"],
        },
        "semantic_model_config": {k: v for k, v in semantic.items() if not k.startswith("_")},
    }


def config_to_boson(native: dict) -> dict:
    acoustic = native["acoustic_model_config"]
    bandwidths = list(native.get("target_bandwidths", [0.5, 1, 1.5, 2, 4]))
    ratios = list(acoustic["downsampling_ratios"])
    bits = max(1, (int(native.get("codebook_size", 1024)) - 1).bit_length())
    n_q = int(1000 * bandwidths[-1] // (_frame_rate(native.get("sample_rate", 24000), ratios) * bits))
    return {
        "n_filters": acoustic["encoder_hidden_size"] // 2,
        "D": acoustic["hidden_size"],
        "codebook_dim": native.get("codebook_dim", 64),
        "target_bandwidths": bandwidths,
        "ratios": ratios,
        "sample_rate": native.get("sample_rate", 24000),
        "bins": native.get("codebook_size", 1024),
        "n_q": n_q,
        "semantic_techer": "hubert_base_general",
    }


def export_codec(name: str, out: Path) -> Path:
    """The boson-format codec `name` (folder or hub id) as a native folder `out`."""

    from ..model.resolve import codec_folder, semantic_teacher_folder

    folder = codec_folder(name)
    boson_cfg = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    state = torch.load(folder / "model.pth", map_location="cpu", weights_only=True)
    teacher = semantic_teacher_folder(folder)
    semantic_cfg = json.loads((Path(teacher) / "config.json").read_text(encoding="utf-8"))
    if not any(k.startswith(SEMANTIC_PREFIX) for k in state):
        from transformers import AutoModel

        hubert = AutoModel.from_pretrained(str(teacher))
        state.update({SEMANTIC_PREFIX + k: v for k, v in hubert.state_dict().items()})
    write_native_codec(state, boson_cfg, semantic_cfg, out)
    return out


def write_native_codec(state: dict, boson_cfg: dict, semantic_cfg: dict, out: Path) -> None:
    from safetensors.torch import save_file

    n_blocks = len(boson_cfg["ratios"])
    native_state = {k: v.contiguous() for k, v in state_to_native(state, n_blocks).items()}
    encoder_hidden = native_state["acoustic_encoder.conv1.weight"].shape[0]
    decoder_hidden = native_state["acoustic_decoder.conv1.weight"].shape[0]
    out.mkdir(parents=True, exist_ok=True)
    config = config_to_native(boson_cfg, semantic_cfg, encoder_hidden, decoder_hidden)
    (out / "config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")
    save_file(native_state, str(out / "model.safetensors"), metadata={"format": "pt"})
    hop = 1
    for r in boson_cfg["ratios"]:
        hop *= r
    (out / "preprocessor_config.json").write_text(
        json.dumps(
            {
                "feature_extractor_type": "DacFeatureExtractor",
                "feature_size": 1,
                "hop_length": hop,
                "padding_side": "right",
                "padding_value": 0.0,
                "return_attention_mask": True,
                "sampling_rate": boson_cfg["sample_rate"],
            },
            indent=2,
        ),
        encoding="utf-8",
    )


def is_native_codec(folder: Path) -> bool:
    return (folder / "model.safetensors").is_file() and not (folder / "model.pth").is_file()


def to_boson_codec_folder(native: Path, name: str | None = None) -> Path:
    """A native codec folder converted (once) to boson's layout next to it, its HuBERT in semantic_teacher/."""
    from safetensors.torch import load_file

    from ..model.refs import SEMANTIC_TEACHER_DIR
    from .imports import converted_folder

    native = Path(native)
    target = converted_folder(native)
    source_stamp = [(native / "model.safetensors").stat().st_size, int((native / "model.safetensors").stat().st_mtime)]
    stamp = target / "higgs_lora_import.json"
    if stamp.is_file() and json.loads(stamp.read_text(encoding="utf-8")).get("model.safetensors") == source_stamp:
        return target
    config = json.loads((native / "config.json").read_text(encoding="utf-8"))
    if config.get("model_type") != "higgs_audio_v2_tokenizer":
        raise ValueError(
            f"{name or native}: config.json says model_type {config.get('model_type')!r}, "
            f"not a Higgs Audio v2 tokenizer"
        )
    boson_cfg = config_to_boson(config)
    state = state_to_boson(load_file(str(native / "model.safetensors")), len(boson_cfg["ratios"]))
    semantic = {k[len(SEMANTIC_PREFIX) :]: v for k, v in state.items() if k.startswith(SEMANTIC_PREFIX)}
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=target.name + ".", dir=target.parent))
    try:
        (tmp / "config.json").write_text(json.dumps(boson_cfg, indent=2), encoding="utf-8")
        torch.save(state, tmp / "model.pth")
        teacher = tmp / SEMANTIC_TEACHER_DIR
        teacher.mkdir()
        from safetensors.torch import save_file

        semantic_cfg = dict(config["semantic_model_config"])
        semantic_cfg.setdefault("architectures", ["HubertModel"])
        (teacher / "config.json").write_text(json.dumps(semantic_cfg, indent=2), encoding="utf-8")
        save_file(
            {k: v.contiguous() for k, v in semantic.items()},
            str(teacher / "model.safetensors"),
            metadata={"format": "pt"},
        )
        (tmp / "higgs_lora_import.json").write_text(
            json.dumps({"source": str(native.resolve()), "model.safetensors": source_stamp}), encoding="utf-8"
        )
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    log.warning(
        "%s is a native-format (model.safetensors) audio tokenizer; converted it once to boson_multimodal's "
        "layout in %s (reused from now on)",
        name or native,
        target,
    )
    return target
