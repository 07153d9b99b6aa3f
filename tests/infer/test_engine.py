"""Voice-cloning inference: generate() inputs, the raw stream layout, stripping, decoding."""

import copy

import numpy as np
import pytest
import torch
from boson_multimodal.model.higgs_audio.utils import build_delay_pattern_mask

from higgs_lora.data.sample import GENERATION_PREFIX, inference_prompt
from higgs_lora.infer.engine import UPSTREAM_STOP_STRINGS, GenerationSettings, InferenceInputs, VoiceCloner


BOS, EOS, C = 1024, 1025, 8
GREEDY = dict(temperature=0.0, ras_win_len=0)  # RAS resamples at random even without temperature


def _with_stream_tokens(codes: torch.Tensor, delay: bool = True) -> torch.Tensor:
    """Boson's layout of one audio segment, built independently of the code under test."""
    n = codes.shape[0]
    stream = torch.cat([torch.full((n, 1), BOS), codes, torch.full((n, 1), EOS)], dim=1)
    if delay:
        stream = build_delay_pattern_mask(stream.unsqueeze(0), bos_token_id=BOS, pad_token_id=EOS)[0].squeeze(0)
    return stream


@pytest.fixture(scope="module")
def sample(sample_samples):
    return sample_samples[0]


@pytest.fixture(scope="module")
def cloner(tiny_model_factory, tiny_tokenizer, tiny_codec):
    return VoiceCloner(tiny_model_factory(), tiny_tokenizer, tiny_codec)


@pytest.fixture(scope="module")
def generation(cloner, sample):
    return cloner.generate(sample, GenerationSettings(max_new_tokens=10, **GREEDY))


# --- inputs ----------------------------------------------------------------------------------


def test_input_ids_are_the_inference_prompt(tiny_tokenizer, tiny_codec, tiny_config, sample):
    inputs = InferenceInputs(tiny_tokenizer, tiny_codec, tiny_config)(sample)
    ids = inputs["input_ids"]
    prompt, paths = inference_prompt(sample, tiny_tokenizer)
    assert ids.shape == (1, len(prompt)) and ids[0].tolist() == prompt
    assert paths == [sample.ref_audio]
    suffix = tiny_tokenizer.encode(GENERATION_PREFIX, add_special_tokens=False)
    assert prompt[-len(suffix):] == suffix
    assert prompt[-1] == tiny_config.audio_out_bos_token_id
    # the reference clip is one assistant audio turn: a single <|AUDIO_OUT|> placeholder, no <|AUDIO|>
    assert prompt.count(tiny_config.audio_out_token_idx) == 1
    assert prompt.count(tiny_config.audio_in_token_idx) == 0
    assert bool(inputs["attention_mask"].all())
    assert "label_ids" not in inputs and "label_audio_ids" not in inputs


def test_audio_out_ids_are_the_reference_codes_with_stream_tokens_and_delay(tiny_tokenizer, tiny_codec, tiny_config,
                                                                            sample):
    maker = InferenceInputs(tiny_tokenizer, tiny_codec, tiny_config)
    reference = tiny_codec.encode(sample.ref_audio)
    (codes,) = maker.reference_codes(sample)
    assert codes.dtype == np.int64 and np.array_equal(codes, reference.numpy())
    inputs = maker(sample)
    expected = _with_stream_tokens(reference)
    assert expected.shape == (C, reference.shape[1] + 2 + C - 1)
    assert torch.equal(inputs["audio_out_ids"], expected)
    assert inputs["audio_out_ids_start"].tolist() == [0]


def test_inputs_move_to_the_requested_device(tiny_tokenizer, tiny_codec, tiny_config, sample):
    inputs = InferenceInputs(tiny_tokenizer, tiny_codec, tiny_config)(sample, device="meta")
    assert all(v.device.type == "meta" for v in inputs.values() if isinstance(v, torch.Tensor))


# --- generation --------------------------------------------------------------------------------


def test_greedy_generation_returns_codec_codes(generation, sample, tiny_tokenizer):
    codes = generation.codes
    assert codes.ndim == 2 and codes.shape[0] == C and codes.shape[1] > 0
    assert codes.dtype == np.int64
    assert codes.min() >= 0 and codes.max() < 1024
    assert generation.prompt_ids == inference_prompt(sample, tiny_tokenizer)[0]
    # raw = delay-patterned stream: stripping removes the C - 1 delay columns, the BOS and the last column
    assert generation.raw_codes.shape == (C, codes.shape[1] + C + 1)


def test_raw_stream_starts_with_the_delay_pattern_bos_triangle(generation):
    raw = generation.raw_codes
    assert (raw[:, 0] == BOS).all()  # the stream-BOS column
    for j in range(1, C):
        assert (raw[j:, j] == BOS).all(), f"column {j}: codebooks >= {j} must still be BOS"
        assert (raw[:j, j] != BOS).all(), f"column {j}: codebooks < {j} must hold generated codes"


def test_max_new_tokens_bounds_the_stream(cloner, sample):
    for limit in (9, 11):
        result = cloner.generate(sample, GenerationSettings(max_new_tokens=limit, **GREEDY))
        assert result.raw_codes.shape[1] <= limit
        assert not result.stopped  # cut by the limit, not ended by the all-EOS column
        assert result.codes.shape == (C, result.raw_codes.shape[1] - C - 1)


def test_greedy_generation_is_deterministic(cloner, sample, generation):
    again = cloner.generate(sample, GenerationSettings(max_new_tokens=10, **GREEDY))
    assert np.array_equal(again.raw_codes, generation.raw_codes)
    assert again.text == generation.text


def test_generate_calls_model_with_serve_engine_settings(cloner, sample, monkeypatch):
    seen = {}

    def fake_generate(**kwargs):
        seen.update(kwargs)
        stream = _with_stream_tokens(torch.arange(3 * C).reshape(C, 3))
        return kwargs["input_ids"], [stream]

    monkeypatch.setattr(cloner.model, "generate", fake_generate)
    result = cloner.generate(sample, GenerationSettings(max_new_tokens=77, temperature=0.7, top_k=20, top_p=0.9,
                                                        ras_win_len=7, ras_win_max_num_repeat=2, seed=3))
    assert seen["max_new_tokens"] == 77 and seen["do_sample"] is True
    assert (seen["temperature"], seen["top_k"], seen["top_p"], seen["seed"]) == (0.7, 20, 0.9, 3)
    assert (seen["ras_win_len"], seen["ras_win_max_num_repeat"]) == (7, 2)
    # the serve engine's stop strings, plus the end of the prompted audio segment
    assert seen["stop_strings"] == ["<|audio_eos|>", *UPSTREAM_STOP_STRINGS]
    assert UPSTREAM_STOP_STRINGS == ["<|end_of_text|>", "<|eot_id|>"]
    assert seen["tokenizer"] is cloner.tokenizer and seen["use_cache"] is True
    # a stream that ends in the all-EOS column is "stopped"; its codes come back exactly
    assert result.stopped
    assert np.array_equal(result.codes, np.arange(3 * C).reshape(C, 3))

    cloner.generate(sample, GenerationSettings(temperature=0.0, ras_win_len=0))
    assert seen["do_sample"] is False and seen["temperature"] is None and seen["top_k"] is None
    assert seen["ras_win_len"] is None  # 0 disables repetition-aware sampling


def test_no_audio_generated_gives_empty_codes(cloner, sample, monkeypatch):
    monkeypatch.setattr(cloner.model, "generate", lambda **kw: (kw["input_ids"], []))
    result = cloner.generate(sample, GenerationSettings(**GREEDY))
    assert result.codes.shape == (C, 0) and not result.stopped
    wav, sr, _ = cloner.clone(sample, GenerationSettings(**GREEDY))
    assert wav.dtype == np.float32 and wav.shape == (0,) and sr == 24000


def test_very_small_max_new_tokens_does_not_crash(cloner, sample):
    result = cloner.generate(sample, GenerationSettings(max_new_tokens=5, **GREEDY))
    assert result.codes.shape == (C, 0) and not result.stopped


@pytest.mark.parametrize("max_new_tokens", [20, 30])
def test_the_prompted_audio_segment_is_kept(cloner, sample, max_new_tokens):
    # The random tiny model closes its first stream after 12 columns, writes a few text tokens and opens
    # a second <|audio_out_bos|> stream; with 20 new tokens that second stream has 4 columns, with 30 it has 14.
    inputs = cloner.prepare_inputs(sample)
    # With the serve engine's stop strings the random model goes on past its first stream.
    _, segments = cloner.model.generate(**inputs, max_new_tokens=max_new_tokens, use_cache=True,
                                        stop_strings=UPSTREAM_STOP_STRINGS, tokenizer=cloner.tokenizer,
                                        do_sample=False, ras_win_len=None)
    assert len(segments) >= 2, "precondition: the random tiny model opens a second audio segment"
    first = cloner.strip_stream_tokens(segments[0]).numpy()
    result = cloner.generate(sample, GenerationSettings(max_new_tokens=max_new_tokens, **GREEDY))
    # The engine returns the prompted segment, stops where it closed, and nothing after it.
    assert np.array_equal(result.codes, first)
    assert result.stopped and result.raw_codes.shape == tuple(segments[0].shape)


# --- stripping -----------------------------------------------------------------------------------


def test_strip_stream_tokens_inverts_the_delay_pattern(cloner):
    gen = torch.Generator().manual_seed(0)
    for frames in (1, 5, 40):
        codes = torch.randint(0, 1024, (C, frames), generator=gen)
        stream = _with_stream_tokens(codes)
        assert stream.shape == (C, frames + C + 1)
        assert torch.equal(cloner.strip_stream_tokens(stream), codes)


def test_strip_stream_tokens_without_delay_pattern(cloner):
    plain = copy.copy(cloner)
    plain.config = copy.deepcopy(cloner.config)
    plain.config.use_delay_pattern = False
    codes = torch.randint(0, 1024, (C, 6), generator=torch.Generator().manual_seed(1))
    assert torch.equal(plain.strip_stream_tokens(_with_stream_tokens(codes, delay=False)), codes)


def test_strip_stream_tokens_clips_stray_stream_ids(cloner):
    codes = torch.randint(0, 1024, (C, 4), generator=torch.Generator().manual_seed(2))
    stream = _with_stream_tokens(codes)
    stream[3, 5] = EOS  # a stream token inside the codes (a cut or odd stream) must not reach the codec
    stripped = cloner.strip_stream_tokens(stream)
    assert stripped.max() <= 1023 and stripped.min() >= 0


# --- decoding ------------------------------------------------------------------------------------


def test_clone_returns_a_24k_float32_waveform_of_frames_times_hop(cloner, sample, tiny_codec):
    settings = GenerationSettings(max_new_tokens=11, **GREEDY)  # within the first audio stream (see above)
    wav, sr, result = cloner.clone(sample, settings)
    assert sr == 24000
    assert wav.dtype == np.float32 and wav.ndim == 1
    assert result.codes.shape[1] > 0 and len(wav) == result.codes.shape[1] * 960
    assert np.isfinite(wav).all() and np.abs(wav).max() <= 1.0 and np.abs(wav).max() > 0
    expected = tiny_codec.decode(torch.as_tensor(result.codes).unsqueeze(0))[0, 0]
    np.testing.assert_allclose(wav, expected)


def test_generate_arabic_speech_entry_point(sample):
    from higgs_lora.infer import engine

    engine._cached_cloner.cache_clear()
    try:
        wav, sr = engine.generate_arabic_speech(
            sample.ref_text, sample.ref_audio, sample.target_text, model_path="tiny", audio_tokenizer="tiny",
            settings=GenerationSettings(max_new_tokens=12, **GREEDY))
    finally:
        engine._cached_cloner.cache_clear()
    assert sr == 24000 and wav.dtype == np.float32 and wav.ndim == 1
    # at most 12 columns: at most 3 frames once the BOS, delay and last columns are stripped
    assert 0 < len(wav) <= (12 - C - 1) * 960 and len(wav) % 960 == 0


def test_stopped_means_generate_closed_the_stream(cloner, sample, monkeypatch):
    # generate() closes a stream by forcing EOS into codebooks 0..C-2 and ends the segment before the
    # last codebook's own EOS column: such a stream is "stopped"; one cut mid-closing is not.
    closed = _with_stream_tokens(torch.arange(3 * C).reshape(C, 3))
    closed[-1, -1] = 77  # the last codebook's final entry is whatever the model sampled
    cut = closed[:, :-2].clone()  # cut by max_new_tokens while the closing was under way
    for stream, expected in ((closed, True), (cut, False)):
        monkeypatch.setattr(cloner.model, "generate", lambda _s=stream, **kw: (kw["input_ids"], [_s]))
        assert cloner.generate(sample, GenerationSettings(**GREEDY)).stopped is expected
