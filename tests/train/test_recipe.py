"""The training recipe end to end on the tiny model and codec: adapter layout, metrics, resume.

One four-step run (module fixture) is shared by most tests; it uses non-default loss weights so
that the logged loss can be checked against the weighted sum of its logged parts.
"""

import hashlib
import json
import math

import pytest
import torch
from safetensors.torch import load_file

from higgs_lora.data.sample_data import create_sample_data
from higgs_lora.model.load import DEFAULT_LORA_TARGETS
from higgs_lora.train import recipe
from higgs_lora.train.recipe import RUN_CONFIG, TrainConfig, quick_test_overrides, read_run_config, train

TINY = dict(
    base_model="tiny",
    audio_tokenizer="tiny",
    batch_size=2,
    gradient_accumulation_steps=1,
    logging_steps=1,
    dataloader_num_workers=0,
)
METRIC_KEYS = {"step", "loss", "text_loss", "audio_loss", "learning_rate", "grad_norm"} | {
    f"audio_loss_cb{c}" for c in range(8)
}


def _metrics(folder):
    lines = (folder / "metrics.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


@pytest.fixture(scope="module")
def run(data4, tmp_path_factory):
    out = tmp_path_factory.mktemp("recipe") / "out"
    cfg = TrainConfig(
        train_data=str(data4),
        output_dir=str(out),
        max_steps=4,
        save_steps=1,
        save_total_limit=4,
        text_loss_weight=0.5,
        audio_loss_weight=2.0,
        report_to="tensorboard",
        **TINY,
    )
    returned = train(cfg)
    return cfg, returned, out


def _dataset_batch(data_path):
    from higgs_lora.data.codes import load_codec
    from higgs_lora.data.collator import DictCollator, build_collator
    from higgs_lora.data.dataset import VoiceCloningDataset
    from higgs_lora.data.validate import load_samples
    from higgs_lora.model.load import load_model, load_tokenizer

    model = load_model("tiny", device="cpu", dtype="fp32")
    dataset = VoiceCloningDataset(load_samples(data_path), load_tokenizer("tiny"), load_codec("tiny"))
    batch = DictCollator(build_collator(model.config))([dataset[i] for i in range(len(dataset))])
    return model, batch


@torch.no_grad()
def _loss(model, batch) -> float:
    from higgs_lora.train.loss import compute_loss

    model.eval()
    return float(compute_loss(model(**batch), batch["label_audio_ids"]).loss)


# --- output folder ---------------------------------------------------------------------------


def test_adapter_is_saved_in_peft_layout_with_the_configured_lora(run):
    """Read from the folder `train` returns (what the CLI prints and merges from): a return pointing at a
    checkpoint-N folder or the staging folder instead of the final adapter fails here."""
    cfg, out, _ = run
    adapter_cfg = json.loads((out / "adapter_config.json").read_text())
    assert adapter_cfg["peft_type"] == "LORA"
    assert adapter_cfg["r"] == cfg.lora_r and adapter_cfg["lora_alpha"] == cfg.lora_alpha
    # No task_type: CAUSAL_LM would pass labels= to a forward that does not take it.
    assert adapter_cfg.get("task_type") is None
    assert set(adapter_cfg["target_modules"]) == set(DEFAULT_LORA_TARGETS)
    weights = load_file(out / "adapter_model.safetensors")
    # Only the adapter is saved, never the base weights.
    assert weights and all(".lora_A." in k or ".lora_B." in k for k in weights)
    for target in DEFAULT_LORA_TARGETS:
        assert any(f"{target}.lora_B" in k for k in weights), f"no LoRA weights for {target}"
    # The audio side of the DualFFN layers is adapted too.
    assert any(".audio_mlp." in k for k in weights)


def test_every_lora_B_was_trained(run):
    # PEFT initialises lora_B to zero; an untrained (or wrongly saved) adapter keeps it there.
    _, _, out = run
    weights = load_file(out / "adapter_model.safetensors")
    lora_b = {k: v for k, v in weights.items() if ".lora_B." in k}
    assert lora_b
    untrained = [k for k, v in lora_b.items() if not v.abs().max() > 0]
    assert not untrained


def test_saved_adapter_lowers_the_training_loss(run, data4):
    from peft import PeftModel

    _, _, out = run
    base, batch = _dataset_batch(data4)
    before = _loss(base, batch)
    adapted = PeftModel.from_pretrained(base, str(out))
    after = _loss(adapted, batch)
    assert math.isfinite(before) and math.isfinite(after)
    assert after < before - 1e-3


def test_run_config_records_what_merge_and_infer_need(run):
    cfg, _, out = run
    saved = json.loads((out / RUN_CONFIG).read_text(encoding="utf-8"))
    assert saved == read_run_config(out)
    assert saved["base_model"] == "tiny" and saved["audio_tokenizer"] == "tiny"
    assert saved["system_prompt"] == cfg.system_prompt
    assert saved["max_steps"] == 4 and saved["text_loss_weight"] == 0.5 and saved["audio_loss_weight"] == 2.0
    assert TrainConfig.mixed_precision == "auto" and saved["mixed_precision"] == "no"  # auto resolved on CPU
    assert read_run_config(out / "nowhere") == {}
    # provenance: the weights actually used, by hash, so serving the adapter on other weights warns
    from higgs_lora.model.tiny import ensure_tiny_model

    expected = hashlib.sha256((ensure_tiny_model() / "model.safetensors").read_bytes()).hexdigest()
    assert saved["provenance"]["base_model"]["weights_sha256"] == {"model.safetensors": expected}
    assert saved["provenance"]["audio_tokenizer"] == {"name": "tiny"}


def test_adapter_folder_card_says_what_was_trained_and_how_to_use_it(run):
    cfg, _, out = run
    card = (out / "README.md").read_text(encoding="utf-8")
    assert "More Information Needed" not in card  # PEFT's empty template is replaced
    assert "`tiny`" in card and f"r={cfg.lora_r}" in card and str(cfg.train_data) in card
    assert "4 optimizer steps" in card
    from huggingface_hub import ModelCard

    meta = ModelCard.load(out / "README.md").data
    assert meta.library_name == "peft" and meta.pipeline_tag == "text-to-speech" and "lora" in meta.tags
    assert meta.base_model is None  # `tiny` is no hub repo, so the metadata names none
    for command in (
        "higgs-lora clone --lora_path",
        "higgs-lora infer --lora_path",
        "higgs-lora merge --lora_path",
        "higgs-lora eval --lora_path",
    ):
        assert command in card


def test_adapter_card_metadata_names_a_hub_base_model_by_repo():
    from huggingface_hub import ModelCard

    from higgs_lora.train.model_card import adapter_card

    base = {"repo": "bosonai/higgs-audio-v2-generation-3B-base", "revision": "10840182ca4ad5d9d9113b60b9bb3c1ef1ba3f84"}
    run = {"base_model": f"{base['repo']}@{base['revision']}", "provenance": {"base_model": base}}
    card = ModelCard(adapter_card(run, "out", steps=1, samples=1, final_loss=None))
    assert card.data.base_model == base["repo"]  # the repo id the hub links to, without @revision
    assert card.text.startswith("# Higgs Audio v2 voice-cloning LoRA adapter")
    assert f"at revision `{base['revision']}`" in card.text


def test_tokenizer_is_saved_with_the_adapter(run):
    from transformers import AutoTokenizer

    from higgs_lora.model.load import load_tokenizer

    _, _, out = run
    assert (out / "tokenizer.json").is_file() and (out / "tokenizer_config.json").is_file()
    saved, original = AutoTokenizer.from_pretrained(out), load_tokenizer("tiny")
    assert len(saved) == len(original)
    text = "<|audio_out_bos|><|AUDIO_OUT|><|audio_eos|> مرحبا hello"
    assert saved.encode(text, add_special_tokens=False) == original.encode(text, add_special_tokens=False)


def test_checkpoints_every_save_step(run):
    _, _, out = run
    for step in (1, 2, 3, 4):
        ckpt = out / f"checkpoint-{step}"
        assert (ckpt / "adapter_model.safetensors").is_file() and (ckpt / "trainer_state.json").is_file()
    # the final adapter is the last checkpoint's weights
    final = load_file(out / "adapter_model.safetensors")
    last = load_file(out / "checkpoint-4" / "adapter_model.safetensors")
    assert final.keys() == last.keys() and all(torch.equal(final[k], last[k]) for k in final)


def test_tensorboard_events_under_runs(run):
    _, _, out = run
    assert list((out / "runs").rglob("events.out.tfevents.*"))


# --- metrics.jsonl ---------------------------------------------------------------------------


def test_metrics_jsonl_has_one_record_per_logged_step(run):
    _, _, out = run
    records = _metrics(out)
    assert [r["step"] for r in records] == [1, 2, 3, 4]
    for r in records:
        assert METRIC_KEYS <= r.keys(), METRIC_KEYS - r.keys()
        assert all(math.isfinite(r[k]) for k in METRIC_KEYS)
        assert r["grad_norm"] > 0
    # no train_runtime / summary record sneaks in
    assert not any("train_runtime" in r for r in records)
    # 4 samples / batch 2: half an epoch per step
    assert [r["epoch"] for r in records] == pytest.approx([0.5, 1.0, 1.5, 2.0])


def test_logged_loss_is_the_weighted_sum_of_its_parts(run):
    cfg, _, out = run
    for r in _metrics(out):
        expected = cfg.text_loss_weight * r["text_loss"] + cfg.audio_loss_weight * r["audio_loss"]
        assert r["loss"] == pytest.approx(expected, abs=5e-4), r
        # and not the unweighted sum (the weights really reach the loss)
        assert abs(r["loss"] - (r["text_loss"] + r["audio_loss"])) > 0.1


def test_audio_loss_is_the_mean_of_the_codebook_losses(run):
    # With the delay pattern every codebook has the same number of targets, so the pooled audio
    # loss equals the mean of the per-codebook losses.
    _, _, out = run
    for r in _metrics(out):
        per_cb = [r[f"audio_loss_cb{c}"] for c in range(8)]
        assert r["audio_loss"] == pytest.approx(sum(per_cb) / 8, abs=1e-4)
        # a random model over 1026 classes: each codebook near ln(1026) ~ 6.93
        assert all(5.0 < v < 9.0 for v in per_cb)


def test_learning_rate_warms_up_then_decays_to_zero(run):
    cfg, _, out = run
    lrs = [r["learning_rate"] for r in _metrics(out)]
    assert lrs[0] == pytest.approx(cfg.learning_rate)
    assert all(a > b for a, b in zip(lrs, lrs[1:]))
    assert lrs[-1] == pytest.approx(0.0, abs=1e-12)


# --- resume ----------------------------------------------------------------------------------


def test_resume_mid_epoch_reproduces_the_uninterrupted_run(run, tmp_path):
    cfg, _, out = run
    resumed_out = tmp_path / "resumed"
    resumed = TrainConfig(
        **{
            **vars(cfg),
            "output_dir": str(resumed_out),
            "report_to": "none",
            "resume_from_checkpoint": str(out / "checkpoint-3"),
        }
    )
    train(resumed)
    # only step 4 was trained after the resume
    assert [r["step"] for r in _metrics(resumed_out)] == [4]
    assert _metrics(resumed_out)[0]["loss"] == pytest.approx(_metrics(out)[3]["loss"], abs=1e-4)
    a, b = load_file(out / "adapter_model.safetensors"), load_file(resumed_out / "adapter_model.safetensors")
    assert a.keys() == b.keys()
    # the bar: the same adapter within 1e-6 on CPU
    assert max(float((a[k] - b[k]).abs().max()) for k in a) <= 1e-6


def test_resume_from_a_shorter_run_completes(data4, tmp_path):
    out = tmp_path / "out"
    base = dict(train_data=str(data4), output_dir=str(out), save_steps=1, report_to="none", **TINY)
    train(TrainConfig(max_steps=2, **base))
    assert (out / "checkpoint-2" / "rng_state.pth").is_file()
    first = load_file(out / "adapter_model.safetensors")
    train(TrainConfig(max_steps=4, resume_from_checkpoint=str(out / "checkpoint-2"), **base))
    # metrics.jsonl is appended to: steps 1-2 from the first run, 3-4 from the resumed one
    assert [r["step"] for r in _metrics(out)] == [1, 2, 3, 4]
    state = json.loads((out / "checkpoint-4" / "trainer_state.json").read_text())
    assert state["global_step"] == 4
    second = load_file(out / "adapter_model.safetensors")
    assert any(not torch.equal(first[k], second[k]) for k in first)


# --- options ---------------------------------------------------------------------------------


def test_gradient_checkpointing_trains_with_identical_first_step(run, data4, tmp_path, monkeypatch):
    """Same seed, data and weights: checkpointed layers must give the same loss and gradient norm."""
    calls = []
    real = recipe.enable_activation_checkpointing

    def spy(model, layers=None):
        n = real(model, layers)
        calls.append(
            (n, [getattr(layer, "_higgs_lora_checkpointed", False) for layer in model.get_base_model().layers])
        )
        return n

    monkeypatch.setattr(recipe, "enable_activation_checkpointing", spy)
    cfg, _, out = run
    gc_out = tmp_path / "gc"
    gc_cfg = TrainConfig(
        **{
            **vars(cfg),
            "output_dir": str(gc_out),
            "max_steps": 1,
            "save_steps": 10**9,
            "report_to": "none",
            "use_gradient_checkpointing": True,
        }
    )
    train(gc_cfg)
    assert calls == [(2, [True, True])]  # the tiny model's two decoder layers are patched in place
    (first,) = _metrics(gc_out)
    reference = _metrics(out)[0]
    for key in ("loss", "text_loss", "audio_loss", "grad_norm"):
        assert first[key] == pytest.approx(reference[key], rel=1e-4), key
    assert (gc_out / "adapter_model.safetensors").is_file()
    assert not (gc_out / "runs").exists()  # report_to="none": no TensorBoard folder


def test_eager_attention_trains_with_identical_first_step(run, tmp_path):
    """Eager attention applies no causal mask of its own: the decoder must build it (SDPA runs without one)."""
    cfg, _, out = run
    eager_out = tmp_path / "eager"
    train(
        TrainConfig(
            **{
                **vars(cfg),
                "output_dir": str(eager_out),
                "max_steps": 1,
                "save_steps": 10**9,
                "report_to": "none",
                "attn_implementation": "eager",
            }
        )
    )
    (first,) = _metrics(eager_out)
    reference = _metrics(out)[0]
    for key in ("loss", "text_loss", "audio_loss", "grad_norm"):
        assert first[key] == pytest.approx(reference[key], rel=1e-4), key
    assert read_run_config(eager_out)["attn_implementation"] == "eager"


def test_quick_test_overrides():
    cfg = quick_test_overrides(
        TrainConfig(
            train_data="x",
            batch_size=8,
            gradient_accumulation_steps=4,
            logging_steps=10,
            save_steps=500,
            dataloader_num_workers=4,
        )
    )
    assert (
        cfg.max_steps,
        cfg.batch_size,
        cfg.gradient_accumulation_steps,
        cfg.logging_steps,
        cfg.dataloader_num_workers,
    ) == (3, 2, 1, 1, 0)
    assert cfg.save_steps > 1000  # no checkpoint during a quick test
    assert quick_test_overrides(TrainConfig(train_data="x", batch_size=1)).batch_size == 1


def test_invalid_data_fails_before_any_model_is_loaded(tmp_path, monkeypatch):
    from higgs_lora.data.validate import InvalidDataError

    data = create_sample_data(tmp_path / "d.json", n_samples=3)
    records = json.loads(data.read_text(encoding="utf-8"))
    records[0]["messages"][2]["content"]["audio_url"] = "d_audio/missing.wav"
    records[2]["messages"] = records[2]["messages"][:4]  # the design's four-message layout: no target
    data.write_text(json.dumps(records), encoding="utf-8")

    def must_not_load(*args, **kwargs):
        raise AssertionError("model/tokenizer/codec loaded before the data was validated")

    for name in ("load_model", "load_tokenizer", "load_codec"):
        monkeypatch.setattr(recipe, name, must_not_load)
    out = tmp_path / "out"
    with pytest.raises(InvalidDataError) as info:
        train(TrainConfig(train_data=str(data), output_dir=str(out), max_steps=1, report_to="none", **TINY))
    problems = info.value.report.problems
    assert [p.index for p in problems] == [0, 2]
    assert [p.reason for p in problems] == ["audio_not_found", "no_target_audio"]
    assert "sample 0" in str(info.value) and "sample 2" in str(info.value)
    assert not out.exists()  # nothing written: no checkpoints, no metrics


# --- code cache, skipped samples, length-aware batches ------------------------------------------


def test_train_builds_the_code_cache_then_reuses_it_with_length_batches(data4, tmp_path, monkeypatch, capsys):
    from higgs_lora.data.codes import TinyCodec

    calls = []

    class Counting(TinyCodec):
        def encode(self, path, sr=None):
            calls.append(path)
            return super().encode(path, sr)

    monkeypatch.setattr(recipe, "load_codec", lambda *a, **k: Counting())
    cache = tmp_path / "codes"
    base = dict(TINY, train_data=str(data4), max_steps=2, save_steps=100, report_to="none", cache_dir=str(cache))
    train(TrainConfig(output_dir=str(tmp_path / "a"), **base))
    assert calls and len(calls) == len(set(calls))  # each clip encoded once
    assert list(cache.glob("*/codes/*/*.npy"))
    calls.clear()
    train(TrainConfig(output_dir=str(tmp_path / "b"), require_cache=True, max_tokens_per_batch=4000, **base))
    assert calls == []
    printed = capsys.readouterr().out
    assert "length-aware batches (--max_tokens_per_batch 4000)" in printed
    assert "up to 4,000 padded tokens per device" in printed  # the start block does not claim --batch_size
    assert len(_metrics(tmp_path / "b")) == 2


def test_train_stops_on_audio_that_fails_to_encode_unless_skip_invalid(data4, tmp_path, monkeypatch):
    from higgs_lora.data.codes import TinyCodec

    samples = json.loads(data4.read_text(encoding="utf-8"))
    broken_clip = samples[1]["messages"][-1]["content"]["audio_url"]

    class Failing(TinyCodec):
        def encode(self, path, sr=None):
            if str(path).endswith(broken_clip.split("/")[-1]):
                raise RuntimeError("decoder exploded")
            return super().encode(path, sr)

    monkeypatch.setattr(recipe, "load_codec", lambda *a, **k: Failing())
    base = dict(TINY, train_data=str(data4), max_steps=1, save_steps=100, report_to="none")
    with pytest.raises(ValueError, match="decoder exploded"):
        train(TrainConfig(output_dir=str(tmp_path / "a"), **base))
    out = train(TrainConfig(output_dir=str(tmp_path / "b"), skip_invalid=True, **base))
    skipped = json.loads((out / "skipped_encoding.json").read_text())
    assert 1 in [s["index"] for s in skipped] and all(
        "decoder exploded" in r for s in skipped for r in s["files"].values()
    )
    assert (out / "adapter_model.safetensors").is_file()


def test_skipped_encoding_names_file_indices_after_validation_dropped_an_earlier_sample(data4, monkeypatch):
    from higgs_lora.data.codes import TinyCodec

    records = json.loads(data4.read_text(encoding="utf-8"))
    records[0]["messages"] = records[0]["messages"][:4]  # no target turn: dropped by validation
    broken_clip = records[2]["messages"][-1]["content"]["audio_url"].split("/")[-1]
    data = data4.parent / "first_invalid.json"  # beside data4: the relative audio paths still resolve
    data.write_text(json.dumps(records), encoding="utf-8")

    class Failing(TinyCodec):
        def encode(self, path, sr=None):
            if str(path).endswith(broken_clip):
                raise RuntimeError("decoder exploded")
            return super().encode(path, sr)

    monkeypatch.setattr(recipe, "load_codec", lambda *a, **k: Failing())
    out = data4.parent / "first_invalid_out"
    train(
        TrainConfig(
            train_data=str(data),
            output_dir=str(out),
            skip_invalid=True,
            max_steps=1,
            save_steps=100,
            cache_dir=str(out / "cache"),
            **{**TINY, "report_to": "none"},
        )
    )
    assert [s["index"] for s in json.loads((out / "skipped_samples.json").read_text())["skipped"]] == [0]
    assert [s["index"] for s in json.loads((out / "skipped_encoding.json").read_text())] == [2]


# --- held-out loss, consistency loss, summaries ------------------------------------------------


def test_eval_split_consistency_and_summaries(sample_data_path, tmp_path, capsys):
    out = tmp_path / "out"
    cfg = TrainConfig(
        train_data=str(sample_data_path),
        output_dir=str(out),
        max_steps=2,
        save_steps=10**9,
        eval_split=0.3,
        eval_steps=1,
        consistency_loss_weight=0.5,
        report_to="none",
        **TINY,
    )
    train(cfg)
    printed = capsys.readouterr().out
    records = _metrics(out)
    # eval_steps 2 on a 3-step run: evaluated at step 2 and once more on the final adapter
    train(
        TrainConfig(
            **{
                **vars(cfg),
                "output_dir": str(tmp_path / "final"),
                "max_steps": 3,
                "eval_steps": 2,
                "consistency_loss_weight": 0.0,
            }
        )
    )
    assert [r["step"] for r in _metrics(tmp_path / "final") if "eval_loss" in r] == [2, 3]
    capsys.readouterr()
    train_records = [r for r in records if "loss" in r]
    eval_records = [r for r in records if "eval_loss" in r]
    assert [r["step"] for r in train_records] == [1, 2] and [r["step"] for r in eval_records] == [1, 2]
    for r in train_records:
        assert {"consistency_loss", "tokens_per_second", "samples_per_second", "memory_gb"} <= r.keys()
        assert r["loss"] == pytest.approx(r["text_loss"] + r["audio_loss"] + 0.5 * r["consistency_loss"], abs=5e-4)
        assert r["samples_per_second"] > 0 and r["tokens_per_second"] > r["samples_per_second"]
    assert train_records[0]["consistency_loss"] == pytest.approx(0.0, abs=1e-6)  # fresh adapter: the base model
    for r in eval_records:
        assert r["eval_loss"] == pytest.approx(
            r["eval_text_loss"] + r["eval_audio_loss"] + 0.5 * r["eval_consistency_loss"], abs=1e-3
        )
        assert {f"eval_audio_loss_cb{c}" for c in range(8)} <= r.keys()
    assert eval_records[-1]["eval_consistency_loss"] > 0  # the adapter has moved by then
    # The start block comes once, before the first step's line; the end block once, after the last.
    assert printed.count("higgs-lora train\n") == 1 and printed.count("higgs-lora train: done") == 1
    start, first_step, done = (
        printed.index("higgs-lora train\n"),
        printed.index("step 1/2"),
        printed.index("train: done"),
    )
    assert start < first_step < done
    assert "by speaker" in printed and "2 per device x 1 accumulation x 1 process = 2 samples per step" in printed
    assert "eval at step 1" in printed and "{'loss'" not in printed  # compact lines, no raw dicts
    assert f"--lora_path {out}" in printed
