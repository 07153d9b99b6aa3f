"""The precision scheme: bf16 training that survives CUDA autocast's fp32 ops, and the flag's rules.

`cuda_autocast_fp32_ops` makes CPU autocast take CUDA autocast's choice for the ops CUDA runs in fp32
(`sum` among them, which is what crashed the first training step on an H200) and for its promote
list; its blind spots are listed in tests/cuda_autocast.py: these tests are not GPU runs.
"""

import json
import os

import pytest
import torch
from cuda_autocast import cuda_autocast_fp32_ops

from higgs_lora.data.collator import DictCollator, build_collator
from higgs_lora.model.load import apply_lora, load_model
from higgs_lora.model.precision import Precision, match_audio_embedding_dtype, resolve_precision
from higgs_lora.train.trainer import HiggsAudioTrainer


def _bare_bf16_tiny():
    """The tiny model in bf16 as boson builds it, without this project's loading code."""
    from boson_multimodal.model.higgs_audio import HiggsAudioModel

    from higgs_lora.model.tiny import ensure_tiny_model

    return HiggsAudioModel.from_pretrained(str(ensure_tiny_model()), torch_dtype=torch.bfloat16)


@pytest.fixture(scope="module")
def batch(tiny_dataset, tiny_config):
    return DictCollator(build_collator(tiny_config))([tiny_dataset[0], tiny_dataset[1]])


def test_emulation_reproduces_the_cuda_crash_on_an_unpatched_model(batch):
    model = _bare_bf16_tiny()
    with cuda_autocast_fp32_ops(), torch.autocast("cpu", dtype=torch.bfloat16):
        assert model._embed_audio_ids(batch["audio_out_ids"]).dtype == torch.float32
        with pytest.raises(RuntimeError, match="Index put requires the source and destination dtypes match"):
            model(**batch)
    # and plain CPU autocast does not show it: why no CPU run saw the crash before
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert model._embed_audio_ids(batch["audio_out_ids"]).dtype == torch.bfloat16


def test_match_audio_embedding_dtype_fixes_the_forward_and_is_idempotent(batch):
    model = _bare_bf16_tiny()
    match_audio_embedding_dtype(model)
    match_audio_embedding_dtype(model)
    with cuda_autocast_fp32_ops(), torch.autocast("cpu", dtype=torch.bfloat16):
        assert model._embed_audio_ids(batch["audio_out_ids"]).dtype == torch.bfloat16
        out = model(**batch)
    assert torch.isfinite(out.audio_logits.float()).all()


def _training_args(tmp_path, **kw):
    from transformers import TrainingArguments

    return TrainingArguments(
        output_dir=str(tmp_path),
        per_device_train_batch_size=2,
        max_steps=2,
        learning_rate=1e-2,
        logging_steps=1,
        save_strategy="no",
        report_to=[],
        remove_unused_columns=False,
        dataloader_num_workers=0,
        use_cpu=True,
        **kw,
    )


def test_bf16_trainer_step_with_cuda_autocast_fp32_ops_emulated(tmp_path, tiny_dataset, tiny_config):
    """A real Trainer step (HiggsAudioTrainer, bf16=True -> autocast) on a bf16 model loaded by our code."""
    precision = resolve_precision("bf16", "cpu")
    model = load_model("tiny", device="cpu", dtype=precision.weights_dtype)
    model.config.use_cache = False
    model = precision.prepare(apply_lora(model, r=4, alpha=8, dropout=0.0))
    trainable = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all(p.dtype == torch.float32 for p in trainable.values())
    frozen = [p.dtype for p in model.parameters() if not p.requires_grad]
    assert set(frozen) == {torch.bfloat16}
    trainer = HiggsAudioTrainer(
        model=model,
        args=_training_args(tmp_path, **precision.training_arguments()),
        train_dataset=tiny_dataset,
        data_collator=DictCollator(build_collator(tiny_config)),
    )
    with cuda_autocast_fp32_ops():
        result = trainer.train()
    assert result.global_step == 2 and torch.isfinite(torch.tensor(result.training_loss))
    changed = [n for n, p in model.named_parameters() if p.requires_grad and not torch.equal(p.detach(), trainable[n])]
    assert changed and all(p.dtype == torch.float32 for p in model.parameters() if p.requires_grad)


# --- resolving the choice ----------------------------------------------------------------------


def test_auto_is_fp32_on_cpu_and_explicit_bf16_is_allowed_there():
    assert resolve_precision("auto", "cpu") == Precision("no", "cpu")
    assert resolve_precision(None, "cpu").weights_dtype == torch.float32
    p = resolve_precision("bf16", "cpu")
    assert p.weights_dtype == torch.bfloat16 and p.training_arguments() == {"bf16": True, "fp16": False}
    assert resolve_precision("no", "cpu").training_arguments() == {"bf16": False, "fp16": False}


def test_fp16_on_cpu_and_unknown_values_are_clear_errors():
    with pytest.raises(ValueError, match="fp16 needs a CUDA GPU"):
        resolve_precision("fp16", "cpu")
    with pytest.raises(ValueError, match="use one of auto, bf16, fp16, no"):
        resolve_precision("fp8", "cpu")


def test_cuda_choices(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert resolve_precision("auto", "cuda:1") == Precision("bf16", "cuda")
    p = resolve_precision("fp16", "cuda")
    assert p.weights_dtype == torch.float16 and p.training_arguments() == {"bf16": False, "fp16": True}
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *a, **k: "Tesla V100")
    assert resolve_precision("auto", "cuda").name == "fp16"
    with pytest.raises(ValueError, match=r"Tesla V100.*does not support bf16"):
        resolve_precision("bf16", "cuda")
    # torch's own answer on a V100/T4: bf16 "supported" through emulation only; that is not bf16 hardware
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: including_emulation)
    assert resolve_precision("auto", "cuda").name == "fp16"
    with pytest.raises(ValueError, match="does not support bf16"):
        resolve_precision("bf16", "cuda")


# --- through the real recipe -------------------------------------------------------------------


@pytest.fixture(scope="module")
def recipe_runs(tmp_path_factory):
    """recipe.train on the tiny model, batch 2 (samples of different lengths: padding) x accumulation 2,
    once in bf16 with CUDA autocast's fp32/promote choices emulated and once in fp32."""
    from higgs_lora.data.sample_data import create_sample_data
    from higgs_lora.train.recipe import TrainConfig, train

    root = tmp_path_factory.mktemp("precision_recipe")
    data = create_sample_data(root / "d.json", n_samples=4)
    runs = {}
    for name in ("bf16", "no"):
        cfg = TrainConfig(
            train_data=str(data),
            output_dir=str(root / name),
            base_model="tiny",
            audio_tokenizer="tiny",
            batch_size=2,
            gradient_accumulation_steps=2,
            max_steps=3,
            logging_steps=1,
            save_steps=10**9,
            dataloader_num_workers=0,
            report_to="none",
            mixed_precision=name,
            learning_rate=1e-3,
        )
        with cuda_autocast_fp32_ops():
            runs[name] = train(cfg)
    return runs


def _rows(folder):
    return [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]


def test_recipe_trains_in_bf16_with_padding_and_accumulation(recipe_runs):
    from safetensors.torch import load_file

    out = recipe_runs["bf16"]
    rows = _rows(out)
    assert [r["step"] for r in rows] == [1, 2, 3]
    assert all(torch.isfinite(torch.tensor([r["loss"], r["grad_norm"]])).all() for r in rows)
    adapter = load_file(str(out / "adapter_model.safetensors"))
    assert {t.dtype for t in adapter.values()} == {torch.float32}  # LoRA trained and saved in fp32
    assert any(k.endswith("lora_B.weight") and t.abs().sum() > 0 for k, t in adapter.items())
    assert json.loads((out / "higgs_lora_run.json").read_text())["mixed_precision"] == "bf16"


def test_bf16_first_loss_matches_fp32(recipe_runs):
    # Step 1 logs the loss of the untouched model: bf16 compute may differ from fp32 only by rounding.
    bf16, fp32 = _rows(recipe_runs["bf16"])[0]["loss"], _rows(recipe_runs["no"])[0]["loss"]
    assert bf16 == pytest.approx(fp32, rel=0.03)


def test_an_fp32_trainer_after_a_bf16_one_runs_without_autocast(tmp_path):
    """TrainingArguments(bf16=True) leaves ACCELERATE_MIXED_PRECISION=bf16 in the environment; a later
    fp32 run in the same process must not inherit it."""
    from transformers import TrainingArguments

    TrainingArguments(output_dir=str(tmp_path / "a"), bf16=True, use_cpu=True, report_to=[])
    assert os.environ["ACCELERATE_MIXED_PRECISION"] == "bf16"
    args = TrainingArguments(
        output_dir=str(tmp_path / "b"),
        use_cpu=True,
        report_to=[],
        **resolve_precision("no", "cpu").training_arguments(),
    )
    from accelerate import Accelerator

    assert Accelerator(cpu=True).mixed_precision == "no" and not args.bf16
