"""One training micro-step, today's against the project's, counted at the dispatch level on CPU.

Both run `HiggsAudioTrainer.training_step` on an accelerate-prepared model under bf16 autocast, as
`train` runs it, on the real `HiggsAudioModel` class (random weights) with the released text
vocabulary and audio heads at a reduced hidden size / depth, on a batch the project's dataset and
collator build from speech-length clips:
- today's step (`legacy=True`): upstream's full forward (text logits at every position, the audio
  head on every audio-out column), the full-logits loss, PEFT's per-layer input casts, and
  Trainer's per-micro-step NaN/inf filter;
- the project's step: what `train.recipe` sets up now (`train.heads` with the host-side merged layout
  and `train.decoder`, `model.precision.prepare`, `logging_nan_inf_filter=False`).

Both run SDPA attention, as models loaded through `load_model` do.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import torch

from ..model.precision import Precision, match_audio_embedding_dtype, upcast_trainable
from .counters import OpCounters, SavedBytes, peak_live_bytes

# hidden, layers, intermediate, heads, kv heads: the measurement used hidden 512 and 6 layers.
SHAPES = {
    "bench": dict(
        hidden=512,
        layers=6,
        intermediate=1024,
        heads=8,
        kv_heads=2,
        lora_r=64,
        batch=4,  # the batch size; shorter clips than its 3–10 s keep the command to a few minutes
        ref_s=(1.5, 3.0),
        tgt_s=(1.5, 3.0),
        chars=(20, 60),
    ),
    "test": dict(
        hidden=64,
        layers=2,
        intermediate=128,
        heads=4,
        kv_heads=2,
        lora_r=8,
        batch=2,
        ref_s=(0.4, 0.6),
        tgt_s=(0.4, 0.6),
        chars=(8, 16),
        vocab=4096,
    ),
}


def build_config(shape: dict):
    """The released configuration (its text vocabulary and 8×1026 audio heads) at a smaller width and depth."""
    from .random_model import build_config as released

    config = released("released")
    text = config.text_config
    text.hidden_size, text.intermediate_size = shape["hidden"], shape["intermediate"]
    text.num_hidden_layers, text.num_attention_heads = shape["layers"], shape["heads"]
    text.num_key_value_heads, text.head_dim = shape["kv_heads"], shape["hidden"] // shape["heads"]
    if "vocab" in shape:
        text.vocab_size = shape["vocab"]
    config.hidden_size = config.audio_ffn_hidden_size = shape["hidden"]
    config.audio_ffn_intermediate_size = shape["intermediate"]
    config.audio_dual_ffn_layers = list(range(shape["layers"]))
    # What `load_model` gives `train` (from_pretrained picks SDPA); built directly, the shipped config
    # (`_attn_implementation_autoset`) would keep eager attention.
    config._attn_implementation = "sdpa"
    return config


def build_batch(shape: dict, config, workdir: Path, seed: int = 0):
    from ..data.codes import TinyCodec
    from ..data.collator import DictCollator, build_collator
    from ..data.dataset import VoiceCloningDataset
    from ..model.load import load_tokenizer
    from .samples import make_samples

    samples = make_samples(workdir, "s", (shape["batch"], shape["ref_s"], shape["tgt_s"], shape["chars"]), seed)
    dataset = VoiceCloningDataset(
        samples,
        load_tokenizer("tiny"),
        TinyCodec(),
        num_codebooks=config.audio_num_codebooks,
        cache_dir=str(workdir / "cache"),
    )
    return DictCollator(build_collator(config))([dataset[i] for i in range(len(dataset))])


def build_model(config, lora_r: int, legacy: bool, seed: int = 0):
    """bf16 base weights, LoRA (r, 2r) on the default targets; today's scheme or the project's."""
    from boson_multimodal.model.higgs_audio import HiggsAudioModel

    from ..model.load import apply_lora
    from ..train import heads

    torch.manual_seed(seed)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.bfloat16)
    try:
        model = HiggsAudioModel(config)
    finally:
        torch.set_default_dtype(previous)
    model.config.use_cache = False
    model = apply_lora(model, lora_r, 2 * lora_r, 0.0)
    torch.manual_seed(seed + 1)
    for name, p in model.named_parameters():
        if "lora_B" in name:  # a fresh adapter is the identity: give it weights so both paths differ from base
            torch.nn.init.normal_(p, std=0.02)
    if legacy:  # the scheme before this change: no input-cast fix, no labelled heads
        match_audio_embedding_dtype(model)
        upcast_trainable(model)
    else:
        Precision("bf16", "cpu").prepare(model)
        heads.install(model)
    return model


def build_trainer(model, workdir: Path, legacy: bool, batch: int):
    from transformers import TrainingArguments

    from ..train.trainer import HiggsAudioTrainer

    args = TrainingArguments(
        output_dir=str(workdir / ("legacy" if legacy else "project")),
        per_device_train_batch_size=batch,
        use_cpu=True,
        report_to=[],
        remove_unused_columns=False,
        disable_tqdm=True,
        logging_nan_inf_filter=legacy,
        **Precision("bf16", "cpu").training_arguments(),
    )
    trainer = HiggsAudioTrainer(model=model, args=args)
    prepared = trainer.accelerator.prepare(trainer.model)  # what Trainer's loop does: autocast + fp32 outputs
    prepared.train()
    return trainer, prepared


def micro_step(trainer, prepared, inputs):
    """Trainer's micro-step as its training loop runs it, the loop's NaN/inf filter included."""
    loss = trainer.training_step(prepared, dict(inputs))
    if trainer.args.logging_nan_inf_filter and (torch.isnan(loss) or torch.isinf(loss)):  # transformers' loop test
        pass
    return loss


def _vocab_shapes(model, vocab: int):
    return [tuple(p.shape) for p in model.parameters() if vocab in p.shape]


def measure(trainer, prepared, inputs, vocab: int) -> dict:
    from torch.profiler import ProfilerActivity, profile
    from torch.utils.flop_counter import FlopCounterMode

    prepared.zero_grad(set_to_none=True)
    counters = OpCounters(vocab, _vocab_shapes(prepared, vocab))
    flops = FlopCounterMode(display=False)
    t0 = time.perf_counter()
    with (
        profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof,
        SavedBytes(prepared.parameters()) as saved,
        flops,
        counters,
    ):
        loss = micro_step(trainer, prepared, inputs)
    wall = time.perf_counter() - t0
    out = counters.report() | {
        "flops": int(flops.get_total_flops()),
        "saved_for_backward_bytes": saved.bytes,
        "peak_live_bytes": peak_live_bytes(prof),
        "loss": float(loss),
        "counted_wall_s": round(wall, 2),
    }
    del prof
    return out


def held_for_backward(prepared, inputs, loss_fn) -> int:
    """Bytes allocated in the forward (and loss) still live when the backward starts: what the step keeps."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        loss = loss_fn(prepared(**inputs), inputs["label_audio_ids"]).loss
    points = [
        (e.time_range.start, e.cpu_memory_usage if e.name == "[memory]" else e.self_cpu_memory_usage)
        for e in prof.events()
    ]
    held = sum(u for _, u in points if u)
    loss.backward()
    return held


def time_steps(trainer, prepared, inputs, repeats: int) -> tuple[float, float]:
    """Fastest of `repeats` micro-steps through Trainer, and of the same work written as a plain loop."""
    from ..train.loss import compute_loss

    def plain():  # the same precision as Trainer on this device: on CPU it runs compute_loss under autocast too
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = compute_loss(prepared(**inputs), inputs["label_audio_ids"]).loss
        loss.backward()

    via, bare = [], []
    prepared.zero_grad(set_to_none=True)
    micro_step(trainer, prepared, inputs)  # warm-up: first-call allocations and lazy inits, untimed
    plain()
    for _ in range(repeats):  # interleaved, so load on the shared machine hits both alike
        prepared.zero_grad(set_to_none=True)
        t = time.perf_counter()
        micro_step(trainer, prepared, inputs)
        via.append(time.perf_counter() - t)
        prepared.zero_grad(set_to_none=True)
        t = time.perf_counter()
        plain()
        bare.append(time.perf_counter() - t)
    return min(via), min(bare)


def _ratio(a, b):
    return round(a / b, 2) if b else None


def run_step_bench(shape_name: str = "bench", workdir: str | Path | None = None, repeats: int = 5) -> dict:
    from ..model.load import enable_activation_checkpointing
    from ..train import heads
    from ..train.loss import compute_loss

    shape = SHAPES[shape_name]
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(workdir or tmp)
        config = build_config(shape)
        vocab = config.text_config.vocab_size
        batch = build_batch(shape, config, work)
        project_inputs = heads.labelled_inputs(batch, config)
        results = {}
        for legacy in (True, False):
            model = build_model(config, shape["lora_r"], legacy)
            trainer, prepared = build_trainer(model, work, legacy, shape["batch"])
            inputs = batch if legacy else project_inputs
            results["today" if legacy else "project"] = measure(trainer, prepared, inputs, vocab)
            if not legacy:
                via, bare = time_steps(trainer, prepared, project_inputs, repeats)
                held = held_for_backward(prepared, project_inputs, compute_loss)
                enable_activation_checkpointing(prepared)
                held_ckpt = held_for_backward(prepared, project_inputs, compute_loss)
            del model, trainer, prepared
    today, project = results["today"], results["project"]
    positions = int(batch["attention_mask"].numel())
    inputs = {
        "shape": {k: v for k, v in shape.items()},
        "text_vocab": vocab,
        "audio_heads": f"{config.audio_num_codebooks}x{config.audio_codebook_size + 2}",
        "batch": shape["batch"],
        "collator_positions": positions,
        "text_targets": int(project_inputs[heads.TEXT_COUNT]),
        "audio_columns": int(batch["label_audio_ids"].shape[1]),
        "labelled_audio_columns": int(len(project_inputs[heads.AUDIO_COLUMNS])),
        "precision": "bf16 weights + bf16 autocast (CPU)",
        "lora_r": shape["lora_r"],
    }
    syncs_today, syncs_project = today["syncs"], project["syncs"]
    layers = shape["layers"]
    return {
        "inputs": inputs,
        "today": today,
        "project": project,
        "logits_memory_ratio": {
            "value": _ratio(today["logits_bytes"], project["logits_bytes"]),
            "today_bytes": today["logits_bytes"],
            "project_bytes": project["logits_bytes"],
            "today_tensors": today["logits_tensors"],
            "project_tensors": project["logits_tensors"],
        },
        "step_peak_memory_ratio": {
            "value": _ratio(today["peak_live_bytes"], project["peak_live_bytes"]),
            "today_bytes": today["peak_live_bytes"],
            "project_bytes": project["peak_live_bytes"],
        },
        "step_flops_ratio": {
            "value": _ratio(today["flops"], project["flops"]),
            "today": today["flops"],
            "project": project["flops"],
            "today_loss": today["loss"],
            "project_loss": project["loss"],
            "loss_difference": abs(today["loss"] - project["loss"]),
        },
        "cast_bytes_ratio": {
            "value": _ratio(today["cast_bytes"], project["cast_bytes"]),
            "today_bytes": today["cast_bytes"],
            "project_bytes": project["cast_bytes"],
            "today_casts": today["casts"],
            "project_casts": project["casts"],
        },
        "host_syncs_per_microstep": {
            "project_code": syncs_project.get("project", 0),
            "model_code": syncs_project.get("model", 0),
            "model_code_per_layer": round(syncs_project.get("model", 0) / layers, 2),
            "today_project_code": syncs_today.get("project", 0),
            "today_model_code": syncs_today.get("model", 0),
            "layers": layers,
            "by_op": project["sync_ops"],
        },
        "trainer_overhead_ratio": {
            "value": round(via / bare, 3),
            "trainer_step_s": round(via, 4),
            "plain_loop_s": round(bare, 4),
            "repeats": repeats,
            "how": "fastest of N micro-steps via HiggsAudioTrainer.training_step vs the same "
            "forward+loss+backward in a plain loop, project path",
        },
        "checkpointing_memory_ratio": {
            "value": _ratio(held, held_ckpt),
            "held_for_backward_bytes": held,
            "with_checkpointing_bytes": held_ckpt,
            "how": "bytes allocated in forward+loss still live at backward, project path",
        },
    }
