"""transformers' native Higgs Audio v2 as an independent oracle for this project (issue 17).

Everything native runs in subprocesses that put `<venv>/native-transformers` (installed by `make setup`)
first on sys.path: one for the model/codec/shape jobs, one for the processor prompts. A missing folder
fails these tests with the way to fix it; they are never skipped.

Disagreements between the two implementations found here, each pinned by a test below:
- boson pads a batch-of-one sequence on the left to a multiple of 8 positions; native does not pad
  (logits compared right-aligned: `test_text_and_audio_logits_match`);
- native marks the last C-1 columns of every audio segment with the delay token instead of
  `<|AUDIO_OUT|>` (`test_prompt_layout_differs_only_by_the_delay_token`);
- the native chat template trims user text, boson does not (`test_native_template_trims_user_text`);
- the hub's native template requires a system turn; this project's export omits it as boson does
  (`test_prompts_match_the_native_processor_token_for_token`, samples without a system prompt);
- closing a stream: same codes, but native appends the all-EOS column and ends the text with C-1 delay
  tokens + <|eot_id|>, boson ends the segment before that column and writes <|audio_eos|>
  (`test_stream_closing_differs_by_the_all_eos_column_and_the_text_tokens`);
- the codecs agree on the waveform to 1e-5 but a code whose nearest-codebook distance is a near-tie can
  flip (`test_codec_encodes_and_decodes_like_boson`).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from higgs_lora.data.collator import batch_to_inputs, build_collator, make_chatml_sample
from higgs_lora.data.sample import CloneSample, inference_prompt, tokenize_chatml, training_chatml
from higgs_lora.model.load import apply_lora, load_model, load_tokenizer
from higgs_lora.native import config as native_config
from higgs_lora.native import weights
from higgs_lora.native.export import export
from higgs_lora.native.parity import native_prompt_parity, to_native_layout
from higgs_lora.native.runtime import native_folder, require_native, run_jobs

TOL = 1e-5  # fp32, same operations in a different order
FRAMES = 20
RELEASED = Path(native_config.RELEASED_CONFIG)
FORWARD_KEYS = ("input_ids", "attention_mask", "audio_out_ids", "audio_out_ids_start")


def _delay_id(tokenizer) -> int:
    return tokenizer.convert_tokens_to_ids(native_config.DELAY_TOKEN)


def _training_batch(tokenizer, config):
    sample = CloneSample("مرحبا بكم في البرنامج", "ref.wav", "hello there, world", "target.wav", system_prompt="Speak.")
    ids, labels, _ = tokenize_chatml(training_chatml(sample), tokenizer)
    gen = np.random.default_rng(0)
    codes = [gen.integers(0, 1024, (8, 11)), gen.integers(0, 1024, (8, 7))]
    return batch_to_inputs(build_collator(config)([make_chatml_sample(ids, labels, codes)]))


def _train_adapter(model, batch, folder: Path) -> torch.nn.Module:
    """A LoRA adapter trained here: a few optimizer steps with this project's shifted loss."""
    from higgs_lora.train.loss import compute_loss

    torch.manual_seed(0)
    peft = apply_lora(model, r=4, alpha=8, dropout=0.0)
    opt = torch.optim.Adam([p for p in peft.parameters() if p.requires_grad], lr=1e-2)
    peft.train()
    for _ in range(5):
        outputs = peft(**{k: batch[k] for k in FORWARD_KEYS + ("label_ids",)})
        loss = compute_loss(outputs, batch["label_audio_ids"]).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    peft.save_pretrained(folder)
    (folder / "higgs_lora_run.json").write_text(json.dumps({"base_model": "tiny", "system_prompt": "Speak."}))
    return peft.eval()


def _boson_logits(model, batch):
    with torch.no_grad():
        out = model(**{k: batch[k] for k in FORWARD_KEYS})
    return out.logits[0], out.audio_logits


def _closing_model(folder: Path, tokenizer):
    """The tiny model rigged to close its stream: codebook 0 emits its stream EOS at the first free step.

    Dimension 0 of the residual stream is made a positive constant no layer writes to, and the head's row
    for (codebook 0, EOS) keys on it; everything else is the tiny model."""
    model = load_model("tiny", device="cpu", dtype="fp32").eval()
    with torch.no_grad():
        model.embed_tokens.weight[:, 0] = 1.0
        model.audio_codebook_embeddings.weight[:, 0] = 1.0 / model.config.audio_num_codebooks
        for layer in model.layers:
            for linear in (layer.self_attn.o_proj, layer.mlp.down_proj, layer.audio_mlp.down_proj):
                linear.weight[0] = 0
        model.audio_decoder_proj.audio_lm_head.weight[model.config.audio_stream_eos_id, 0] = 50.0
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return model


def _released_token_ids() -> dict:
    # The released tokenizer's ids (upstream-facts.md); the delay token is reserved_special_token_6.
    return {
        "<|begin_of_text|>": 128000,
        "<|eot_id|>": 128009,
        "<|AUDIO|>": 128015,
        "<|audio_eos|>": 128012,
        native_config.DELAY_TOKEN: 128014,
    }


@pytest.fixture(scope="module")
def oracle(tmp_path_factory):
    require_native()  # fails (never skips) with "run `make setup`" when the folder is missing
    from boson_multimodal.model.higgs_audio import HiggsAudioConfig, HiggsAudioModel

    root = tmp_path_factory.mktemp("oracle")
    tokenizer = load_tokenizer("tiny")
    base = load_model("tiny", device="cpu", dtype="fp32").eval()
    config = base.config
    delay = _delay_id(tokenizer)
    report = export("tiny", root / "native")
    batch = _training_batch(tokenizer, config)
    native_batch = to_native_layout(batch, config.audio_num_codebooks, config.audio_out_token_idx, delay)

    ids, _ = inference_prompt(CloneSample("Hello and welcome.", "ref.wav", "How are you today?"), tokenizer)
    prompt = batch_to_inputs(
        build_collator(config)([make_chatml_sample(ids, None, [np.random.default_rng(1).integers(0, 1024, (8, 11))])])
    )
    with torch.no_grad():
        _, boson_audio = base.generate(
            **prompt,
            max_new_tokens=FRAMES,
            use_cache=True,
            do_sample=False,
            tokenizer=tokenizer,
            stop_strings=["<|end_of_text|>", "<|eot_id|>"],
            ras_win_len=None,
        )
    native_prompt = to_native_layout(prompt, config.audio_num_codebooks, config.audio_out_token_idx, delay)

    adapter = _train_adapter(load_model("tiny", device="cpu", dtype="fp32"), batch, root / "adapter")
    export("tiny", root / "native-lora", lora_path=str(root / "adapter"))

    closing = _closing_model(root / "closing", tokenizer)
    with torch.no_grad():
        closing_seq, closing_audio = closing.generate(
            **prompt,
            max_new_tokens=FRAMES,
            use_cache=True,
            do_sample=False,
            tokenizer=tokenizer,
            ras_win_len=None,
            stop_strings=["<|end_of_text|>", "<|eot_id|>"],
        )
    export(str(root / "closing"), root / "native-closing")

    released = json.loads(RELEASED.read_text())
    with torch.device("meta"):
        boson_released = HiggsAudioModel(HiggsAudioConfig(**released))
    released_shapes = {k: tuple(v.shape) for k, v in weights.rename(boson_released.state_dict(), "native").items()}

    jobs = [
        {"kind": "forward", "model_dir": str(report.output_dir), **native_batch},
        {"kind": "generate", "model_dir": str(report.output_dir), "frames": FRAMES, **native_prompt},
        {"kind": "forward", "model_dir": str(root / "native-lora"), **native_batch},
        {"kind": "meta", "config": native_config.to_native(released, _released_token_ids())},
        {"kind": "generate", "model_dir": str(root / "native-closing"), "frames": FRAMES, **native_prompt},
    ]
    results = run_jobs(jobs, root / "jobs")
    for result in results:
        assert "error" not in result, result.get("traceback")
    return {
        "root": root,
        "export": report,
        "tokenizer": tokenizer,
        "config": config,
        "batch": batch,
        "native_batch": native_batch,
        "boson": _boson_logits(base, batch),
        "boson_audio": boson_audio,
        "native_prompt": native_prompt,
        "adapter": _boson_logits(adapter, batch),
        "results": results,
        "released_shapes": released_shapes,
        "closing": (closing_seq[0, len(ids) :].tolist(), closing_audio),
        "prompt_ids": ids,
    }


def _native_logits(oracle, index):
    result = oracle["results"][index]
    mask = oracle["native_batch"]["input_ids"][0]
    config = oracle["config"]
    audio_positions = (mask == config.audio_out_token_idx) | (mask == _delay_id(oracle["tokenizer"]))
    return result["text_logits"][0], result["audio_logits"][0][audio_positions]


def test_native_runs_the_separately_installed_transformers(oracle):
    import transformers

    assert transformers.__version__.startswith("4.46")  # the main environment keeps its pin
    major, minor = (int(x) for x in oracle["results"][0]["transformers_version"].split(".")[:2])
    assert (major, minor) >= (5, 3)


def test_text_and_audio_logits_match(oracle):
    boson_text, boson_audio = oracle["boson"]
    native_text, native_audio = _native_logits(oracle, 0)
    length = native_text.shape[0]
    # boson left-pads a batch of one to a multiple of 8 positions: its logits are longer, right-aligned.
    assert boson_text.shape[0] == -(-length // 8) * 8 > length
    assert torch.allclose(boson_text[-length:], native_text, atol=TOL, rtol=0)
    # per codebook, at every audio column of both segments (reference and target)
    assert boson_audio.shape == native_audio.shape == (oracle["batch"]["audio_out_ids"].shape[1], 8, 1026)
    assert torch.allclose(boson_audio, native_audio, atol=TOL, rtol=0)
    assert not torch.allclose(boson_audio[:, 0], boson_audio[:, 1], atol=1e-3)  # the comparison can fail


def test_greedy_continuation_matches_for_20_frames(oracle):
    boson = oracle["boson_audio"][0]  # (C, frames): the segment the prompt's <|audio_out_bos|> opened
    native = oracle["results"][1]["audio_sequences"][0][oracle["native_prompt"]["audio_input_ids"].shape[1] :].t()
    assert boson.shape == native.shape == (8, FRAMES)
    assert torch.equal(boson, native)
    # both open the stream with an all-BOS column and run the delay pattern (codebook c starts at column c+1)
    assert (boson[:, 0] == 1024).all() and (boson[1:, 1] == 1024).all() and (boson[0, 1] < 1024)
    assert (boson[:, FRAMES - 1] < 1024).all()


def test_stream_closing_differs_by_the_all_eos_column_and_the_text_tokens(oracle):
    """Same codes up to the close; then boson ends the segment one column before the last codebook's EOS
    and writes `<|audio_eos|>` in the text, native appends the all-EOS column and ends the text with
    <|eot_id|> after C-1 delay tokens. This project follows boson (its engine reads that segment)."""
    tokenizer, config = oracle["tokenizer"], oracle["config"]
    boson_text, boson_audio = oracle["closing"]
    result = oracle["results"][4]
    native = result["audio_sequences"][0][oracle["native_prompt"]["audio_input_ids"].shape[1] :].t()
    eos, c = config.audio_stream_eos_id, config.audio_num_codebooks
    [segment] = boson_audio
    assert segment.shape == (c, c + 1)  # BOS column, then codebook k closes k columns after codebook 0
    assert native.shape == (c, c + 2) and torch.equal(native[:, : c + 1], segment)
    assert (native[:, -1] == eos).all() and not (segment[:, -1] == eos).all()
    assert tokenizer.decode(boson_text).startswith("<|AUDIO_OUT|><|audio_eos|>")
    native_text = result["sequences"][0][oracle["native_prompt"]["input_ids"].shape[1] :].tolist()
    delay = _delay_id(tokenizer)
    assert native_text == [config.audio_out_token_idx] + [delay] * c + [tokenizer.convert_tokens_to_ids("<|eot_id|>")]


def test_merged_exported_adapter_matches_the_unmerged_adapter(oracle):
    adapter_text, adapter_audio = oracle["adapter"]
    native_text, native_audio = _native_logits(oracle, 2)
    assert torch.allclose(adapter_text[-native_text.shape[0] :], native_text, atol=TOL, rtol=0)
    assert torch.allclose(adapter_audio, native_audio, atol=TOL, rtol=0)
    base_audio = oracle["boson"][1]
    assert (adapter_audio - base_audio).abs().max() > 100 * TOL  # the adapter changed the model
    record = json.loads((oracle["root"] / "native-lora" / "higgs_lora_export.json").read_text())
    assert record["dtype"] == "float32" and record["merged_in"] == "float32"
    assert json.loads((oracle["root"] / "native-lora" / "higgs_lora_run.json").read_text())["system_prompt"] == "Speak."


def test_renaming_covers_every_released_weight(oracle):
    native_shapes = oracle["results"][3]["shapes"]
    ours = oracle["released_shapes"]
    assert ours == native_shapes  # every name and shape; text head included (use_text_head=True)
    assert "text_lm_head.weight" in ours and native_shapes["audio_lm_head.weight"] == (8 * 1026, 3072)


def test_missing_native_folder_fails_with_the_fix(monkeypatch, tmp_path):
    monkeypatch.setattr(sys, "prefix", str(tmp_path))
    assert native_folder() == tmp_path / "native-transformers"
    with pytest.raises(FileNotFoundError, match="make setup"):
        require_native()


# --- codec and processor ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def codec_folder(tmp_path_factory):
    """boson's real tokenizer class with random weights, staged as a folder (with its HuBERT) as `download` does.

    The codebooks get random entries and are marked initialised: left uninitialised, boson's first encode
    runs k-means on them (minutes on CPU), which native never does."""
    from higgs_lora.bench.random_codec import build_random_tokenizer, random_semantic_teacher
    from higgs_lora.data.higgs_codec import RELEASED_TOKENIZER_CONFIG

    folder = tmp_path_factory.mktemp("codec") / "boson"
    folder.mkdir()
    tok = build_random_tokenizer()
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for layer in tok.quantizer.vq.layers:
            layer._codebook.embed.copy_(torch.randn(layer._codebook.embed.shape, generator=gen))
            layer._codebook.embed_avg.copy_(layer._codebook.embed)
            layer._codebook.inited.fill_(1)
    (folder / "config.json").write_text(json.dumps(RELEASED_TOKENIZER_CONFIG))
    torch.save(tok.state_dict(), folder / "model.pth")
    random_semantic_teacher().save_pretrained(folder / "semantic_teacher")
    return folder


@pytest.fixture(scope="module")
def waves(tmp_path_factory):
    folder = tmp_path_factory.mktemp("waves")
    gen = np.random.default_rng(0)
    paths = []
    for i, n in enumerate((12000, 13920)):
        t = np.arange(n) / 24000
        wave = 0.3 * np.sin(2 * np.pi * (180 + 60 * i) * t) + 0.05 * gen.standard_normal(n)
        paths.append(folder / f"ref{i}.wav")
        sf.write(paths[-1], wave.astype(np.float32), 24000, subtype="FLOAT")
    return paths


# Near-ties in the residual nearest-code search flip a few codes between the two codecs (random codebooks).
MIN_CODE_AGREEMENT = 0.97
WAVE_TOL = 1e-5


def test_codec_encodes_and_decodes_like_boson(codec_folder, waves, tmp_path):
    from higgs_lora.data.codes import load_codec
    from higgs_lora.native.codec import export_codec

    codec = load_codec(str(codec_folder), device="cpu")
    native_dir = export_codec(str(codec_folder), tmp_path / "native-codec")
    jobs, ours = [], []
    for path in waves:
        wave, _ = sf.read(path, dtype="float32")
        codes = codec.encode(wave, 24000)
        ours.append((codes, codec.decode(codes)[0, 0]))
        jobs.append({"kind": "codec", "codec_dir": str(native_dir), "wave": torch.from_numpy(wave), "codes": codes})
    for (codes, wave), result in zip(ours, run_jobs(jobs, tmp_path / "jobs")):
        assert "error" not in result, result.get("traceback")
        assert result["codes"].shape == codes.shape
        assert float((result["codes"] == codes).float().mean()) >= MIN_CODE_AGREEMENT
        assert np.abs(result["wave"].numpy() - wave).max() < WAVE_TOL < np.abs(wave).max()

    # import: the native folder, named as a codec, is converted once (HuBERT staged beside it) and decodes
    # the same codes to the same waveform (weight norm split back into g and v: equal up to rounding)
    imported = load_codec(str(native_dir), device="cpu")
    assert (tmp_path / "native-codec.boson" / "semantic_teacher" / "config.json").is_file()
    codes, wave = ours[0]
    assert np.abs(imported.decode(codes)[0, 0] - wave).max() < WAVE_TOL
    state, original = imported.tokenizer.state_dict(), codec.tokenizer.state_dict()
    assert set(state) == set(original)
    assert all(
        torch.allclose(state[k].float(), original[k].float(), atol=1e-6) for k in original if not k.endswith("_v")
    )


SAMPLES = [
    CloneSample(
        "مرحبا بكم في البرنامج.", "ref0", "كيف حالك اليوم؟", system_prompt="Generate audio following instruction."
    ),
    CloneSample("مرحبا بكم في البرنامج.", "ref0", "كيف حالك اليوم؟"),
    CloneSample("Hello and welcome to the show.", "ref1", "How are you today?", system_prompt="Speak."),
    CloneSample("Hello and welcome to the show.", "ref1", "How are you today?"),
]


def test_prompts_match_the_native_processor_token_for_token(codec_folder, waves, tmp_path):
    samples = [CloneSample(**{**s.__dict__, "ref_audio": str(waves[int(s.ref_audio[-1])])}) for s in SAMPLES]
    records = native_prompt_parity(samples, "tiny", str(codec_folder), tmp_path, min_code_agreement=MIN_CODE_AGREEMENT)
    for sample, record in zip(samples, records):
        assert record["ok"], (sample, record)
        assert record["tokens"] == record["native_tokens"] and record["stream_tokens_agree"]
    assert records[0]["tokens"] > records[1]["tokens"]  # the system turn is there, and absent without one


def test_check_alignment_native_parity_runs_the_native_processor(codec_folder, waves, tmp_path):
    """`check-alignment --native_parity` reports the native processor's verdict as a check of its own."""
    from higgs_lora.cli import main
    from higgs_lora.data.convert import canonical_record

    data = tmp_path / "data.jsonl"
    lines = [
        canonical_record(
            s.ref_text, str(waves[int(s.ref_audio[-1])]), s.target_text, str(waves[0]), s.system_prompt or ""
        )
        for s in SAMPLES
    ]
    data.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in lines) + "\n", encoding="utf-8")
    report = tmp_path / "r.json"
    rc = main(
        [
            "check-alignment",
            "--train_data",
            str(data),
            "--base_model",
            "tiny",
            "--audio_tokenizer",
            str(codec_folder),
            "--skip_overfit",
            "--native_parity",
            "--native_min_code_agreement",
            str(MIN_CODE_AGREEMENT),
            "--report",
            str(report),
            "--device",
            "cpu",
        ]
    )
    checks = json.loads(report.read_text(encoding="utf-8"))["checks"]
    assert rc == 0 and checks["native_prompt_parity"]["ok"], checks["native_prompt_parity"]
    assert len(checks["native_prompt_parity"]["details"]) == len(SAMPLES)
    assert (
        main(
            [
                "check-alignment",
                "--train_data",
                str(data),
                "--base_model",
                "tiny",
                "--audio_tokenizer",
                "tiny",
                "--skip_overfit",
                "--native_parity",
            ]
        )
        == 2
    )  # the stand-in codec has no native twin: one line


def test_prompt_layout_differs_only_by_the_delay_token():
    """Native writes the last C-1 columns of a segment as the delay token; boson keeps one <|AUDIO_OUT|>
    per segment and expands it inside the model. Same positions, same codes."""
    tokenizer = load_tokenizer("tiny")
    config = load_model("tiny", device="cpu").config
    ids, _ = inference_prompt(SAMPLES[2], tokenizer)
    inputs = batch_to_inputs(
        build_collator(config)([make_chatml_sample(ids, None, [np.zeros((8, 5), dtype=np.int64)])])
    )
    native = to_native_layout(inputs, 8, config.audio_out_token_idx, _delay_id(tokenizer))["input_ids"][0].tolist()
    at = ids.index(config.audio_out_token_idx)
    columns = 5 + 2 + 7  # BOS column, codes, EOS column, delay pattern
    assert native[:at] == ids[:at] and native[at + columns :] == ids[at + 1 :]
    assert native[at : at + columns] == [config.audio_out_token_idx] * 7 + [_delay_id(tokenizer)] * 7


def test_native_template_trims_user_text():
    """boson tokenizes user text as given; the native template (the hub's and ours) trims it. The project's
    text front-end strips texts, so its prompts never hit this."""
    from jinja2 import Environment

    from higgs_lora.native.template import CHAT_TEMPLATE

    env = Environment()
    env.globals["raise_exception"] = lambda msg: (_ for _ in ()).throw(ValueError(msg))
    render = env.from_string(CHAT_TEMPLATE).render
    text = render(
        messages=[{"role": "user", "content": "  padded  "}], bos_token="<|begin_of_text|>", add_generation_prompt=True
    )
    tokenizer = load_tokenizer("tiny")
    ids, _ = inference_prompt(CloneSample("  padded  ", "r.wav", "x"), tokenizer)
    assert "\n\npadded<|eot_id|>" in text
    assert "\n\n  padded  <|eot_id|>" in tokenizer.decode(ids)
    with pytest.raises(ValueError, match="one audio item"):
        render(messages=[{"role": "assistant", "content": "text"}], bos_token="")
