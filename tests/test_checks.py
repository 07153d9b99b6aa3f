"""check-alignment: passes on the real pipeline, and each check catches the breakage it exists for.

The real pipeline must pass all three checks; each broken variant must fail its own check:
- an unshifted loss (learns to copy its input)       -> overfit_regenerate fails;
- training collator with the delay pattern flipped  -> prompt_parity fails;
- the reference clip trained (start_index=None)     -> label_audit fails.
The same holds with the large-model judge (teacher-forced agreement instead of regeneration), and
the fit runs through the real training path (Trainer, precision, a padded batch of 2).
"""

import copy
import dataclasses
import functools
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from higgs_lora.checks import FIT_SETTINGS, AlignmentReport, CheckResult, TrainingSide, run_checks
from higgs_lora.data.collator import build_collator
from higgs_lora.data.dataset import VoiceCloningDataset
from higgs_lora.data.sample import training_chatml
from higgs_lora.train.loss import compute_loss

NAMES = ["prompt_parity", "label_audit", "overfit_regenerate"]


@pytest.fixture(scope="module")
def samples(sample_samples):
    return sample_samples[:2]  # two speakers


def _run(samples, model_factory, tokenizer, codec, side=None, overfit=True, **kwargs):
    return run_checks(
        samples, model_factory(), tokenizer, codec, side=side, overfit=overfit, log=lambda *a: None, **kwargs
    )


@pytest.fixture(scope="module")
def real_report(samples, tiny_model_factory, tiny_tokenizer, tiny_codec):
    return _run(samples, tiny_model_factory, tiny_tokenizer, tiny_codec, max_steps=150, check_every=25)


def _checks(report):
    return {c.name: c for c in report.checks}


# --- the real pipeline -----------------------------------------------------------------------


def test_real_pipeline_passes_all_three_checks(real_report):
    assert [c.name for c in real_report.checks] == NAMES
    failed = [f"{c.name}: {c.summary}" for c in real_report.checks if not c.ok]
    assert real_report.ok and not failed


def test_real_pipeline_prompt_parity_details(real_report, samples):
    rows = _checks(real_report)["prompt_parity"].details
    assert [r["index"] for r in rows] == list(range(len(samples)))
    assert all(r["ids_equal"] and r["reference_codes_equal"] and r["prompt_tokens"] > 0 for r in rows)


def test_real_pipeline_label_audit_details(real_report, samples, tiny_codec):
    rows = _checks(real_report)["label_audit"].details
    for row, sample in zip(rows, samples):
        frames = tiny_codec.encode(sample.target_audio).shape[1]
        # text labels: <|audio_out_bos|>, <|audio_eos|>, <|eot_id|> of the target turn
        assert row["text_labels"] == 3
        # audio labels: every target frame plus the stream EOS, in each of the 8 codebooks
        assert row["audio_labels"] == 8 * (frames + 1)
        assert row["reference_labels"] == 0
        assert row["stream_eos_trained"] and row["audio_labels_match_codes"]


def test_real_pipeline_overfit_regenerates_the_target_exactly(real_report, samples, tiny_codec):
    details = _checks(real_report)["overfit_regenerate"].details
    target_frames = tiny_codec.encode(samples[0].target_audio).shape[1]
    assert details["target_frames"] == details["generated_frames"] == target_frames
    assert details["code_agreement"] == 1.0
    last = details["history"][-1]
    assert last["exact_match"] and last["stopped"]
    assert details["steps"] == last["step"] <= 150


# --- each broken pipeline is caught ------------------------------------------------------------


def test_unshifted_loss_fails_overfit_regenerate(samples, tiny_model_factory, tiny_tokenizer, tiny_codec):
    side = TrainingSide(loss_fn=functools.partial(compute_loss, shift=False))
    # one generation only, at the end: a model that never stops generates slowly
    report = _run(samples, tiny_model_factory, tiny_tokenizer, tiny_codec, side=side, max_steps=150, check_every=150)
    checks = _checks(report)
    assert checks["prompt_parity"].ok and checks["label_audit"].ok  # the data side is still right
    assert not checks["overfit_regenerate"].ok and not report.ok
    details = checks["overfit_regenerate"].details
    assert details["steps"] == 150 and len(details["history"]) == 1
    # the copy-the-input model learns its objective (from ~ln(1024) = 6.9 at the start), yet does not
    # reproduce the target
    assert details["history"][0]["loss"] < 1.0
    assert not details["history"][0]["exact_match"] and details["code_agreement"] < 0.5
    assert "does NOT reproduce" in checks["overfit_regenerate"].summary


def _flipped_delay_collator(config, *args, **kwargs):
    flipped = copy.deepcopy(config)
    flipped.use_delay_pattern = not config.use_delay_pattern
    return build_collator(flipped, *args, **kwargs)


def test_delay_pattern_mismatch_fails_prompt_parity(samples, tiny_model_factory, tiny_tokenizer, tiny_codec):
    side = TrainingSide(collator_factory=_flipped_delay_collator)
    report = _run(samples, tiny_model_factory, tiny_tokenizer, tiny_codec, side=side, overfit=False)
    parity = _checks(report)["prompt_parity"]
    assert not parity.ok and not report.ok
    # the token ids still agree; the reference codes the model sees do not
    assert all(r["ids_equal"] and not r["reference_codes_equal"] for r in parity.details)
    assert all("reference_shapes" in r for r in parity.details)
    assert "mismatch in samples [0, 1]" in parity.summary
    assert [c.name for c in report.checks] == NAMES[:2]


class UnmaskedReferenceDataset(VoiceCloningDataset):
    """Trains every assistant turn, the reference clip included."""

    def chatml(self, sample):
        return dataclasses.replace(training_chatml(sample), start_index=None)


def test_unmasked_reference_fails_label_audit(samples, tiny_model_factory, tiny_tokenizer, tiny_codec):
    side = TrainingSide(dataset_cls=UnmaskedReferenceDataset)
    report = _run(samples, tiny_model_factory, tiny_tokenizer, tiny_codec, side=side, overfit=False)
    checks = _checks(report)
    assert checks["prompt_parity"].ok  # same prompt; only the labels are wrong
    audit = checks["label_audit"]
    assert not audit.ok and not report.ok
    assert all(r["reference_labels"] > 0 for r in audit.details)
    assert "wrong labels in samples [0, 1]" in audit.summary


# --- teacher-forced mode (the large-model judge) -----------------------------------------------

TF = dict(mode="teacher_forced", max_steps=60, check_every=10)


class RecordingCollator:
    """The real training collator, remembering what each fitting batch looked like."""

    batches: list = []

    def __init__(self, config, *args, **kwargs):
        self.inner = build_collator(config, *args, **kwargs)

    def __call__(self, samples):
        batch = self.inner(samples)
        RecordingCollator.batches.append(batch.attention_mask.clone())
        return batch


@pytest.fixture(scope="module")
def tf_report(samples, tiny_model_factory, tiny_tokenizer, tiny_codec):
    RecordingCollator.batches = []
    side = TrainingSide(collator_factory=RecordingCollator)
    report = _run(samples, tiny_model_factory, tiny_tokenizer, tiny_codec, side=side, **TF)
    return report, list(RecordingCollator.batches)


def test_teacher_forced_passes_on_the_real_pipeline(tf_report):
    report, _ = tf_report
    assert [c.name for c in report.checks] == NAMES[:2] + ["overfit_teacher_forced"] and report.ok
    details = _checks(report)["overfit_teacher_forced"].details
    assert details["mode"] == "teacher_forced" and details["code_agreement"] == 1.0
    assert details["target_positions"] > 0 and details["steps"] <= TF["max_steps"]
    assert details["learning_rate"] == 3e-3 and details["precision"] == "no"  # the tiny model's settings, fp32 on CPU
    assert details["lora_r"] == FIT_SETTINGS["small"]["lora_r"]
    assert report.meta["overfit"]["mode"] == "teacher_forced" and report.meta["overfit"]["via"] == "train.recipe"


def test_fit_runs_padded_batches_of_two(tf_report):
    _, masks = tf_report
    fitting = [m for m in masks if m.shape[0] == 2]
    assert fitting and len(fitting) == len(masks) - 4  # 4 single-sample batches: parity + audit, 2 samples each
    assert all(bool((m == 0).any()) for m in fitting)  # padding in every fitting batch


def test_unshifted_loss_fails_teacher_forced(samples, tiny_model_factory, tiny_tokenizer, tiny_codec):
    side = TrainingSide(loss_fn=functools.partial(compute_loss, shift=False))
    report = _run(samples, tiny_model_factory, tiny_tokenizer, tiny_codec, side=side, **TF)
    check = _checks(report)["overfit_teacher_forced"]
    assert not check.ok and not report.ok and check.details["steps"] == TF["max_steps"]
    assert check.details["history"][-1]["loss"] < 1.0 and check.details["code_agreement"] < 0.5
    assert "does NOT equal" in check.summary


def test_delay_pattern_mismatch_fails_teacher_forced_too(samples, tiny_model_factory, tiny_tokenizer, tiny_codec):
    side = TrainingSide(collator_factory=_flipped_delay_collator)
    report = _run(samples, tiny_model_factory, tiny_tokenizer, tiny_codec, side=side, **TF)
    checks = _checks(report)
    assert not checks["prompt_parity"].ok and not checks["overfit_teacher_forced"].ok
    assert checks["overfit_teacher_forced"].details["code_agreement"] < 0.5


def test_unmasked_reference_fails_with_teacher_forced_mode(samples, tiny_model_factory, tiny_tokenizer, tiny_codec):
    side = TrainingSide(dataset_cls=UnmaskedReferenceDataset)
    report = _run(
        samples,
        tiny_model_factory,
        tiny_tokenizer,
        tiny_codec,
        side=side,
        mode="teacher_forced",
        max_steps=5,
        check_every=5,
    )
    assert not _checks(report)["label_audit"].ok and not report.ok


def test_fit_runs_under_the_training_precision(samples, tiny_tokenizer, tiny_codec, monkeypatch):
    """bf16 with CUDA autocast's fp32 ops emulated: the fit goes through autocast and recipe's precision
    scheme, so without the scheme's audio-embedding cast it crashes in the check exactly as training
    would; with it (recipe's `precision.prepare`), the check passes."""
    from boson_multimodal.model.higgs_audio import HiggsAudioModel
    from cuda_autocast import cuda_autocast_fp32_ops

    from higgs_lora.model import precision as precision_module
    from higgs_lora.model.load import load_model
    from higgs_lora.model.precision import resolve_precision
    from higgs_lora.model.tiny import ensure_tiny_model

    precision = resolve_precision("bf16", "cpu")
    with cuda_autocast_fp32_ops():
        with monkeypatch.context() as m:
            m.setattr(precision_module, "match_audio_embedding_dtype", lambda model: None)
            bare = HiggsAudioModel.from_pretrained(str(ensure_tiny_model()), torch_dtype=torch.bfloat16)
            with pytest.raises(RuntimeError, match="Index put requires the source and destination dtypes match"):
                _run(samples, lambda: bare, tiny_tokenizer, tiny_codec, precision=precision, **TF)
        model = load_model("tiny", device="cpu", dtype=precision.weights_dtype)
        report = _run(samples, lambda: model, tiny_tokenizer, tiny_codec, precision=precision, **TF)
    check = _checks(report)["overfit_teacher_forced"]
    assert check.details["precision"] == "bf16" and report.ok, check.summary


def test_bf16_fit_with_cuda_autocast_fp32_ops_emulated_then_regeneration_as_infer(samples, tiny_tokenizer, tiny_codec):
    """check-alignment on the tiny model in bf16 (auto on a GPU): the fit runs under autocast with CUDA's
    fp32 ops emulated, greedy generation without autocast as infer runs, and the tiny target is still
    reproduced exactly. (The CPU's dynamic cache here; the static cache a GPU picks is the next test.)"""
    from cuda_autocast import cuda_autocast_fp32_ops

    from higgs_lora.model.load import load_model
    from higgs_lora.model.precision import resolve_precision

    precision = resolve_precision("bf16", "cpu")
    with cuda_autocast_fp32_ops():
        model = load_model("tiny", device="cpu", dtype=precision.weights_dtype)
        report = _run(
            samples,
            lambda: model,
            tiny_tokenizer,
            tiny_codec,
            precision=precision,
            mode="regenerate",
            max_steps=100,
            check_every=50,
        )
    check = _checks(report)["overfit_regenerate"]
    assert report.ok and check.details["precision"] == "bf16", check.summary


# --- what the checks compare and what they cost --------------------------------------------------


class CountingCodec:
    def __init__(self, codec):
        self.codec, self.calls = codec, []
        self.sampling_rate, self.tps, self.num_codebooks = codec.sampling_rate, codec.tps, codec.num_codebooks

    def encode(self, path, sr=None):
        self.calls.append(str(path))
        return self.codec.encode(path, sr)

    def decode(self, codes):
        return self.codec.decode(codes)


def test_each_file_is_encoded_once_per_side_and_the_fit_encodes_nothing(
    samples, tiny_model_factory, tiny_tokenizer, tiny_codec
):
    codec = CountingCodec(tiny_codec)
    run_checks(
        samples,
        tiny_model_factory(),
        tiny_tokenizer,
        codec,
        overfit=True,
        log=lambda *a: None,
        mode="teacher_forced",
        max_steps=2,
        check_every=2,
    )
    files = {p for s in samples for p in (s.ref_audio, s.target_audio)}
    refs = [s.ref_audio for s in samples]
    # the training cache encodes every file once; the inference side encodes each reference once
    assert sorted(codec.calls) == sorted(list(files) + refs)


class CorruptCacheDataset(VoiceCloningDataset):
    """A training cache whose reference codes differ from what the codec gives."""

    def __init__(self, samples, *args, **kwargs):
        super().__init__(samples, *args, **kwargs)
        self._refs = {s.ref_audio for s in samples}

    def _load_codes(self, path):
        codes = super()._load_codes(path)
        return (codes.astype(np.int64) + 1) % 1024 if path in self._refs else codes


def test_parity_reads_the_training_cache(samples, tiny_tokenizer, tiny_codec, tiny_config):
    report = run_checks(
        samples,
        None,
        tiny_tokenizer,
        tiny_codec,
        side=TrainingSide(dataset_cls=CorruptCacheDataset),
        overfit=False,
        config=tiny_config,
        log=lambda *a: None,
    )
    parity = _checks(report)["prompt_parity"]
    assert not parity.ok and all(r["ids_equal"] and not r["reference_codes_equal"] for r in parity.details)


# --- the report --------------------------------------------------------------------------------


def test_report_json(real_report, tmp_path):
    path = tmp_path / "nested" / "report.json"
    real_report.write(path)
    data = json.loads(path.read_text(encoding="utf-8"))
    assert data["ok"] is True
    assert data["samples"] == 2 and data["audio_num_codebooks"] == 8 and data["use_delay_pattern"] is True
    assert list(data["checks"]) == NAMES
    for name in NAMES:
        entry = data["checks"][name]
        assert set(entry) == {"ok", "summary", "details"}
        assert entry["ok"] is True and isinstance(entry["summary"], str) and entry["summary"]
        assert entry["details"]
    assert "alignment OK" in real_report.text() and "[FAIL]" not in real_report.text()


def test_report_ok_is_false_when_any_check_fails(tmp_path):
    report = AlignmentReport([CheckResult("a", True, "fine"), CheckResult("b", False, "broken", {"x": 1})], {})
    assert report.ok is False
    report.write(tmp_path / "r.json")
    data = json.loads((tmp_path / "r.json").read_text())
    assert data["ok"] is False and data["checks"]["b"] == {"ok": False, "summary": "broken", "details": {"x": 1}}
    assert "[FAIL] b: broken" in report.text() and "alignment FAILED" in report.text()


# --- the CLI -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cli_data(tmp_path_factory):
    from higgs_lora.data.sample_data import create_sample_data

    return create_sample_data(tmp_path_factory.mktemp("check_cli") / "d.json", n_samples=3)


def test_cli_check_alignment_passes_and_writes_the_report(cli_data, tmp_path):
    from higgs_lora.cli import main

    report = tmp_path / "report.json"
    rc = main(
        [
            "check-alignment",
            "--train_data",
            str(cli_data),
            "--base_model",
            "tiny",
            "--audio_tokenizer",
            "tiny",
            "--report",
            str(report),
            "--max_steps",
            "150",
        ]
    )
    data = json.loads(report.read_text(encoding="utf-8"))
    assert rc == 0 and data["ok"] is True
    assert list(data["checks"]) == NAMES and data["samples"] == 3
    assert data["base_model"] == "tiny" and data["overfit"]["via"] == "train.recipe"


def test_cli_check_alignment_skip_overfit(cli_data, tmp_path):
    from higgs_lora.cli import main

    report = tmp_path / "report.json"
    rc = main(
        [
            "check-alignment",
            "--train_data",
            str(cli_data),
            "--base_model",
            "tiny",
            "--audio_tokenizer",
            "tiny",
            "--report",
            str(report),
            "--skip_overfit",
            "--max_samples",
            "2",
        ]
    )
    data = json.loads(report.read_text(encoding="utf-8"))
    assert rc == 0 and data["ok"] is True
    assert list(data["checks"]) == NAMES[:2] and data["samples"] == 2
    assert "overfit" not in data


def test_cli_skip_overfit_loads_no_weights(cli_data, tmp_path, monkeypatch):
    from boson_multimodal.model.higgs_audio import HiggsAudioModel

    from higgs_lora.cli import main

    def refuse(*args, **kwargs):
        raise AssertionError("--skip_overfit loaded model weights")

    monkeypatch.setattr(HiggsAudioModel, "from_pretrained", refuse)
    monkeypatch.setattr("higgs_lora.model.load.load_model", refuse)
    rc = main(
        [
            "check-alignment",
            "--train_data",
            str(cli_data),
            "--base_model",
            "tiny",
            "--audio_tokenizer",
            "tiny",
            "--skip_overfit",
            "--report",
            str(tmp_path / "r.json"),
        ]
    )
    assert rc == 0 and json.loads((tmp_path / "r.json").read_text())["ok"] is True


def test_cli_teacher_forced_reports_its_settings(cli_data, tmp_path):
    from higgs_lora.cli import main

    report = tmp_path / "report.json"
    rc = main(
        [
            "check-alignment",
            "--train_data",
            str(cli_data),
            "--base_model",
            "tiny",
            "--audio_tokenizer",
            "tiny",
            "--report",
            str(report),
            "--overfit_mode",
            "teacher_forced",
            "--max_steps",
            "60",
            "--check_every",
            "10",
            "--max_samples",
            "2",
        ]
    )
    data = json.loads(report.read_text(encoding="utf-8"))
    assert rc == 0 and data["ok"] is True
    assert data["overfit"] == {
        "mode": "teacher_forced",
        "learning_rate": 3e-3,
        "max_steps": 60,
        "check_every": 10,
        "lora_r": 64,
        "lora_alpha": 128,
        "precision": "no",
        "via": "train.recipe",
    }
    assert "overfit_teacher_forced" in data["checks"]


def test_check_alignment_passes_on_data_laid_out_differently(tmp_path):
    """Data this project did not write: JSON Lines, absolute paths, no system message, list/dict
    contents, 16 kHz stereo FLAC. The CLI must read it and pass every check."""
    import numpy as np
    import soundfile as sf
    import soxr

    from higgs_lora.cli import main
    from higgs_lora.data.sample_data import ASSETS, load_manifest

    clips = [c for c in load_manifest()["clips"] if c["speaker"] == "spk2"]
    paths = []
    for clip in clips:
        wav, sr = sf.read(str(ASSETS.joinpath(clip["file"])), dtype="float32")
        wav = soxr.resample(wav, sr, 16000)
        path = tmp_path / (Path(clip["file"]).stem + ".flac")
        sf.write(path, np.stack([wav, 0.5 * wav], axis=1), 16000)
        paths.append(path.resolve())
    records = [
        {
            "messages": [
                {"role": "user", "content": [{"type": "text", "text": clips[a]["transcript"]}]},
                {"role": "assistant", "content": [{"type": "audio", "audio_url": str(paths[a])}]},
                {"role": "user", "content": {"type": "text", "text": clips[b]["transcript"]}},
                {"role": "assistant", "content": {"type": "audio", "audio_url": str(paths[b])}},
            ],
            "speaker": "outside",
            "start_index": 3,
        }
        for a, b in ((0, 1), (1, 2))
    ]
    data = tmp_path / "outside.jsonl"
    data.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in records), encoding="utf-8")
    report = tmp_path / "report.json"
    rc = main(
        [
            "check-alignment",
            "--train_data",
            str(data),
            "--base_model",
            "tiny",
            "--audio_tokenizer",
            "tiny",
            "--system_prompt",
            "",
            "--max_steps",
            "150",
            "--report",
            str(report),
        ]
    )
    body = json.loads(report.read_text(encoding="utf-8"))
    assert rc == 0 and body["ok"] is True, body
    assert body["checks"]["prompt_parity"]["details"][0]["prompt_tokens"] > 0


def test_prompt_parity_covers_the_text_front_end(samples, tiny_model_factory, tiny_tokenizer, tiny_codec):
    """Arabic transcripts with tatweel, diacritics, Persian digits and stray spaces: parity holds when both
    sides run the normaliser, and fails when the training side skips it."""
    arabic = [
        dataclasses.replace(s, ref_text="  مرحـــبا   بِكُم ۳ ", target_text="السَّلامُ   عليـكم ٢٠٢٤") for s in samples
    ]
    spec = "whitespace,tatweel,strip_diacritics,digits=western"
    both = _run(arabic, tiny_model_factory, tiny_tokenizer, tiny_codec, overfit=False, text_normalization=spec)
    assert _checks(both)["prompt_parity"].ok
    skipped = _run(
        arabic,
        tiny_model_factory,
        tiny_tokenizer,
        tiny_codec,
        overfit=False,
        text_normalization=spec,
        side=TrainingSide(normalize_text=False),
    )
    parity = _checks(skipped)["prompt_parity"]
    assert not parity.ok and all("first_difference_at" in row for row in parity.details)
    # with text already normalised, skipping it changes nothing: the failure above is the normaliser's
    from higgs_lora.data.text import normalize_sample

    normalised = [normalize_sample(s, spec) for s in arabic]
    plain = _run(
        normalised,
        tiny_model_factory,
        tiny_tokenizer,
        tiny_codec,
        overfit=False,
        text_normalization=spec,
        side=TrainingSide(normalize_text=False),
    )
    assert _checks(plain)["prompt_parity"].ok


@pytest.mark.parametrize("mode", ["regenerate", "teacher_forced"])
def test_a_side_that_skips_the_normaliser_fails_in_both_modes(
    samples, tiny_model_factory, tiny_tokenizer, tiny_codec, mode, monkeypatch
):
    """The skipped front-end reaches the fit too: recipe loads the fit's data without normalising."""
    from higgs_lora.train import recipe

    seen = []
    real_select = recipe.select_samples

    def spy(*args, **kwargs):
        seen.append(kwargs["text_normalization"])
        return real_select(*args, **kwargs)

    monkeypatch.setattr(recipe, "select_samples", spy)
    arabic = [dataclasses.replace(s, target_text="السَّلامُ   عليـكم ٢٠٢٤") for s in samples]
    spec = "whitespace,tatweel,strip_diacritics,digits=western"
    report = _run(
        arabic,
        tiny_model_factory,
        tiny_tokenizer,
        tiny_codec,
        text_normalization=spec,
        mode=mode,
        max_steps=2,
        check_every=2,
        side=TrainingSide(normalize_text=False),
    )
    assert not _checks(report)["prompt_parity"].ok and not report.ok
    assert seen == ["none"]
    report = _run(
        arabic,
        tiny_model_factory,
        tiny_tokenizer,
        tiny_codec,
        text_normalization=spec,
        mode=mode,
        max_steps=2,
        check_every=2,
    )
    assert _checks(report)["prompt_parity"].ok and seen == ["none", spec]


def test_bf16_regeneration_with_the_static_cache_infer_uses_on_cuda(samples, tiny_tokenizer, tiny_codec):
    """On CUDA `infer` picks the static KV cache; the judge must generate as infer does there. The
    static cache is allocated in the weights' dtype (fp32 once the fit upcasts them), so a judge that
    generated under bf16 autocast crashed in `index_copy_` (Float vs BFloat16) on every GPU."""
    from higgs_lora.model.load import load_model
    from higgs_lora.model.precision import resolve_precision

    precision = resolve_precision("bf16", "cpu")
    model = load_model("tiny", device="cpu", dtype=precision.weights_dtype)
    report = _run(
        samples,
        lambda: model,
        tiny_tokenizer,
        tiny_codec,
        precision=precision,
        mode="regenerate",
        max_steps=100,
        check_every=50,
        cache="static",
    )
    check = _checks(report)["overfit_regenerate"]
    assert check.details["cache"] == "static" and check.details["precision"] == "bf16"
    assert report.ok, check.summary


def test_the_static_cache_crash_the_judge_used_to_hit(tiny_tokenizer, tiny_codec, samples):
    """The defect itself, pinned: the cloner on the static cache under bf16 autocast fails; the way
    infer runs it (no autocast) works. If upstream ever makes the first work, this test says so."""
    from higgs_lora.infer.engine import GenerationSettings, VoiceCloner
    from higgs_lora.model.load import load_model
    from higgs_lora.model.precision import resolve_precision

    precision = resolve_precision("bf16", "cpu")
    model = precision.prepare(load_model("tiny", device="cpu", dtype=precision.weights_dtype))
    for p in model.parameters():
        p.requires_grad_(True)
    precision.prepare(model)  # everything trainable: fp32, as in the full-weight fit
    cloner = VoiceCloner(model, tiny_tokenizer, tiny_codec, cache="static", cache_lengths=(1024,))
    settings = GenerationSettings(max_new_tokens=12, temperature=0.0, ras_win_len=0)
    with pytest.raises(RuntimeError, match="same dtype"), precision.autocast():
        cloner.generate(samples[0], settings)
    assert cloner.generate(samples[0], settings).raw_codes.shape[1] > 0


# --- --lora_path: the run's own adapter, settings and samples, nothing fitted ---------------------


def _train_tiny_run(root, loss_fn=None):
    from higgs_lora.data.sample_data import create_sample_data
    from higgs_lora.train.recipe import TrainConfig, train

    data = create_sample_data(root / "d.json", n_samples=2)
    cfg = TrainConfig(
        train_data=str(data),
        output_dir=str(root / "run"),
        base_model="tiny",
        audio_tokenizer="tiny",
        batch_size=2,
        gradient_accumulation_steps=1,
        max_steps=80,
        logging_steps=10,
        save_steps=10**9,
        dataloader_num_workers=0,
        report_to="none",
        learning_rate=3e-3,
        lora_r=16,
        lora_alpha=32,
        lora_dropout=0.0,
        warmup_ratio=0.0,
    )
    return train(cfg, loss_fn=loss_fn)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    return _train_tiny_run(tmp_path_factory.mktemp("run_ok"))


def _no_fit(monkeypatch):
    from higgs_lora.train.trainer import HiggsAudioTrainer

    def refuse(*a, **k):
        raise AssertionError("--lora_path must not fit anything")

    monkeypatch.setattr(HiggsAudioTrainer, "train", refuse)


def test_lora_path_checks_the_runs_own_adapter_and_samples(tiny_run, tmp_path, monkeypatch):
    from higgs_lora.cli import main

    _no_fit(monkeypatch)
    report = tmp_path / "r.json"
    rc = main(["check-alignment", "--lora_path", str(tiny_run), "--report", str(report), "--device", "cpu"])
    data = json.loads(report.read_text(encoding="utf-8"))
    assert list(data["checks"]) == ["prompt_parity", "label_audit", "adapter_teacher_forced"]
    adapter = data["checks"]["adapter_teacher_forced"]["details"]
    assert rc == 0 and data["ok"], adapter
    assert data["train_data"] == json.loads((tiny_run / "higgs_lora_run.json").read_text())["train_data"]
    assert data["lora_path"] == str(tiny_run) and data["samples"] == 2
    assert adapter["agreement"] > adapter["agreement_adapter_off"]


def test_lora_path_fails_a_run_trained_with_an_unshifted_loss(tmp_path, monkeypatch):
    from higgs_lora.cli import main

    run = _train_tiny_run(tmp_path, loss_fn=functools.partial(compute_loss, shift=False))
    _no_fit(monkeypatch)
    report = tmp_path / "r.json"
    rc = main(["check-alignment", "--lora_path", str(run), "--report", str(report), "--device", "cpu"])
    data = json.loads(report.read_text(encoding="utf-8"))
    assert rc == 1 and not data["ok"]
    assert data["checks"]["prompt_parity"]["ok"] and data["checks"]["label_audit"]["ok"]  # the data side is right
    assert not data["checks"]["adapter_teacher_forced"]["ok"]


@pytest.mark.parametrize(
    "side, failing",
    [
        (TrainingSide(collator_factory=_flipped_delay_collator), "prompt_parity"),
        (TrainingSide(dataset_cls=UnmaskedReferenceDataset), "label_audit"),
    ],
)
def test_lora_path_mode_catches_the_data_side_faults(tiny_run, tiny_tokenizer, tiny_codec, samples, side, failing):
    from higgs_lora.infer.engine import VoiceCloner

    cloner = VoiceCloner.load("tiny", str(tiny_run), "tiny", device="cpu", cache="dynamic")
    report = run_checks(
        samples, cloner.model, tiny_tokenizer, tiny_codec, side=side, overfit=False, adapter=True, log=lambda *a: None
    )
    assert not _checks(report)[failing].ok and not report.ok


def test_an_extra_parity_check_runs_on_the_inference_samples_and_counts(
    samples, tiny_tokenizer, tiny_codec, tiny_config
):
    seen = []

    def native(infer_samples, tokenizer, codec, config, infer_inputs):
        seen.append(len(infer_samples))
        return CheckResult("prompt_parity_native", False, "differs")

    report = run_checks(
        samples,
        None,
        tiny_tokenizer,
        tiny_codec,
        overfit=False,
        config=tiny_config,
        log=lambda *a: None,
        parity_checks=(native,),
    )
    assert [c.name for c in report.checks] == ["prompt_parity", "prompt_parity_native", "label_audit"]
    assert seen == [2] and not report.ok


def test_lora_fit_on_bf16_weights_is_judged_as_infer_serves_it(samples, tiny_tokenizer, tiny_codec):
    """The released model's GPU path: bf16 base weights + recipe's fp32 LoRA, fitted under bf16 autocast, then
    judged without autocast (the unmerged adapter as infer serves it), teacher-forced and on the static cache."""
    from higgs_lora.model.load import load_model
    from higgs_lora.model.precision import resolve_precision

    precision = resolve_precision("bf16", "cpu")
    for mode in ("teacher_forced", "regenerate"):
        model = load_model("tiny", device="cpu", dtype=precision.weights_dtype)
        report = _run(
            samples,
            lambda: model,
            tiny_tokenizer,
            tiny_codec,
            precision=precision,
            mode=mode,
            max_steps=4,
            check_every=4,
            lora_r=16,
            cache="static",
        )
        details = _checks(report)[f"overfit_{mode}"].details
        assert details["precision"] == "bf16" and details["steps"] == 4 and len(details["history"]) == 1
        assert details["lora_r"] == 16 and details["lora_alpha"] == 32
        assert mode == "teacher_forced" or details["cache"] == "static"


def test_the_fit_is_trains_recipe_with_the_users_train_flags(cli_data, tmp_path, monkeypatch):
    """Flags only train's recipe reads reach the fit: the LoRA rank and targets (recipe's apply_lora) and
    the loss weights (recipe's HiggsAudioTrainer); and the fit is a real run of recipe.train."""
    from higgs_lora.cli import main
    from higgs_lora.train import recipe

    seen = {}
    real_train, real_trainer = recipe.train, recipe.HiggsAudioTrainer

    def spy_train(cfg, *args, **kwargs):
        seen["cfg"] = cfg
        out = real_train(cfg, *args, **kwargs)
        seen["adapter"] = json.loads((out / "adapter_config.json").read_text())  # recipe saved its adapter
        return out

    class SpyTrainer(real_trainer):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            seen["weights"] = (self.text_loss_weight, self.audio_loss_weight)

    monkeypatch.setattr(recipe, "train", spy_train)
    monkeypatch.setattr(recipe, "HiggsAudioTrainer", SpyTrainer)
    report = tmp_path / "r.json"
    rc = main(
        [
            "check-alignment",
            "--train_data",
            str(cli_data),
            "--base_model",
            "tiny",
            "--audio_tokenizer",
            "tiny",
            "--max_samples",
            "2",
            "--overfit_mode",
            "teacher_forced",
            "--max_steps",
            "3",
            "--check_every",
            "3",
            "--lora_r",
            "4",
            "--lora_targets",
            "self_attn.q_proj",
            "audio_mlp.up_proj",
            "--text_loss_weight",
            "0.5",
            "--audio_loss_weight",
            "2.0",
            "--report",
            str(report),
        ]
    )
    assert rc in (0, 1) and "cfg" in seen
    assert seen["adapter"]["r"] == 4 and seen["adapter"]["lora_alpha"] == 8
    assert sorted(seen["adapter"]["target_modules"]) == ["audio_mlp.up_proj", "self_attn.q_proj"]
    assert seen["weights"] == (0.5, 2.0) and seen["cfg"].base_model == "tiny"
    data = json.loads(report.read_text())
    assert data["overfit"]["lora_r"] == 4 and data["overfit"]["via"] == "train.recipe"


def test_overfit_params_is_gone_with_a_clear_message(cli_data, capsys):
    from higgs_lora.cli import main

    rc = main(
        [
            "check-alignment",
            "--train_data",
            str(cli_data),
            "--base_model",
            "tiny",
            "--audio_tokenizer",
            "tiny",
            "--overfit_params",
            "full",
        ]
    )
    err = capsys.readouterr().err
    assert rc == 2 and "--overfit_params full: removed" in err and "LoRA" in err


def test_a_diverging_fit_is_a_failed_check_not_a_crash(samples, tiny_model_factory, tiny_tokenizer, tiny_codec):
    """recipe's NaN guard stops the fit (TrainingAborted); the check reports it as a failure with a hint."""

    def nan_loss(*args, **kwargs):
        parts = compute_loss(*args, **kwargs)
        return dataclasses.replace(parts, loss=parts.loss * float("nan"))

    report = _run(
        samples,
        tiny_model_factory,
        tiny_tokenizer,
        tiny_codec,
        side=TrainingSide(loss_fn=nan_loss),
        mode="teacher_forced",
        max_steps=20,
        check_every=20,
    )
    check = _checks(report)["overfit_teacher_forced"]
    assert not check.ok and not report.ok and "non-finite" in check.details["aborted"]
    assert "lower --learning_rate" in check.summary
