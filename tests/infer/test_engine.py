"""VoiceCloner: generation (the raw stream layout, stops, token budgets), decoding, long texts in chunks."""

import numpy as np
import pytest
import torch
from stream_layout import BOS, GREEDY, C, with_stream_tokens

from higgs_lora.data.sample import inference_prompt
from higgs_lora.infer.chunking import split_text
from higgs_lora.infer.engine import VoiceCloner
from higgs_lora.infer.settings import ChunkSettings, GenerationSettings
from higgs_lora.infer.stream import UPSTREAM_STOP_STRINGS, strip_stream_tokens


@pytest.fixture(scope="module")
def cloner(tiny_model_factory, tiny_tokenizer, tiny_codec):
    return VoiceCloner(tiny_model_factory(), tiny_tokenizer, tiny_codec)


@pytest.fixture(scope="module")
def generation(cloner, sample):
    return cloner.generate(sample, GenerationSettings(max_new_tokens=10, **GREEDY))


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
        stream = with_stream_tokens(torch.arange(3 * C).reshape(C, 3))
        return kwargs["input_ids"], [stream]

    monkeypatch.setattr(cloner.model, "generate", fake_generate)
    result = cloner.generate(
        sample,
        GenerationSettings(
            max_new_tokens=77, temperature=0.7, top_k=20, top_p=0.9, ras_win_len=7, ras_win_max_num_repeat=2, seed=3
        ),
    )
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
    _, segments = cloner.model.generate(
        **inputs,
        max_new_tokens=max_new_tokens,
        use_cache=True,
        stop_strings=UPSTREAM_STOP_STRINGS,
        tokenizer=cloner.tokenizer,
        do_sample=False,
        ras_win_len=None,
    )
    assert len(segments) >= 2, "precondition: the random tiny model opens a second audio segment"
    first = strip_stream_tokens(segments[0], cloner.config).numpy()
    result = cloner.generate(sample, GenerationSettings(max_new_tokens=max_new_tokens, **GREEDY))
    # The engine returns the prompted segment, stops where it closed, and nothing after it.
    assert np.array_equal(result.codes, first)
    assert result.stopped and result.raw_codes.shape == tuple(segments[0].shape)


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


# --- long text -----------------------------------------------------------------------------------


def test_long_text_chunks_generate_concatenate_and_keep_the_context_bounded(cloner, sample, tiny_tokenizer):
    from dataclasses import replace

    from higgs_lora.infer.chunking import crossfade_concat

    long = replace(sample, target_text=" ".join([sample.target_text] * 5))
    settings = GenerationSettings(max_new_tokens=30, **GREEDY)
    wav, sr, result = cloner.clone(long, settings, ChunkSettings(max_chars=40, context_chunks=2, crossfade_s=0.02))
    n = len(result.chunks)
    assert n >= 4 and result.texts == split_text(long.target_text, 40)
    # the reference is always first; at most the last 2 generated chunks follow it
    assert [g.prompt_audio_segments for g in result.chunks] == [1 + min(i, 2) for i in range(n)]
    first = tiny_tokenizer.decode(result.chunks[0].prompt_ids)
    reference_turns = first[: first.index("<|AUDIO_OUT|>")]  # system, user(ref text), assistant(ref audio)
    for i, g in enumerate(result.chunks):
        prompt = tiny_tokenizer.decode(g.prompt_ids)
        assert prompt.startswith(reference_turns)
        assert prompt.count("<|AUDIO_OUT|>") == 1 + min(i, 2)
        # the context turns are the previous chunks' texts, in order, then the chunk itself
        expected_texts = result.texts[max(0, i - 2) : i + 1]
        positions = [prompt.index(t) for t in expected_texts]
        assert positions == sorted(positions)
        assert prompt.rstrip().endswith("<|audio_out_bos|>")
    # bounded: the prompt stops growing once the context window is full
    lengths = [len(g.prompt_ids) for g in result.chunks]
    assert max(lengths[3:]) <= max(lengths[:3]) + 20
    # the waveform is the chunks' decoded audio joined with the crossfade
    expected = crossfade_concat([cloner.decode(g.codes) for g in result.chunks], sr, 0.02)
    np.testing.assert_allclose(wav, expected)
    assert result.frames == sum(g.codes.shape[1] for g in result.chunks)


def test_context_chunks_zero_keeps_only_the_reference(cloner, sample):
    from dataclasses import replace

    long = replace(sample, target_text=" ".join([sample.target_text] * 3))
    _, _, result = cloner.clone(
        long, GenerationSettings(max_new_tokens=20, **GREEDY), ChunkSettings(max_chars=40, context_chunks=0)
    )
    assert len(result.chunks) >= 2 and all(g.prompt_audio_segments == 1 for g in result.chunks)


def test_one_chunk_prompt_is_the_training_prompt_text_untouched(cloner, sample, tiny_tokenizer):
    from dataclasses import replace

    spaced = replace(sample, target_text=sample.target_text + "  \n")  # whitespace a splitter would normalise
    _, _, result = cloner.clone(spaced, GenerationSettings(max_new_tokens=11, **GREEDY))
    assert len(result.chunks) == 1
    assert result.chunks[0].prompt_ids == inference_prompt(spaced, tiny_tokenizer)[0]


def test_token_cap_from_the_text_length_stops_a_model_that_never_ends(cloner, sample, monkeypatch):
    from dataclasses import replace

    from higgs_lora.constants import TEXT_CAP_FRAMES_PER_CHAR as FRAMES_PER_CHAR
    from higgs_lora.constants import TEXT_CAP_SLACK_FRAMES as SLACK_FRAMES

    budgets = []
    monkeypatch.setattr(
        cloner.net, "generate", lambda **kw: budgets.append(kw["max_new_tokens"]) or (kw["input_ids"], [])
    )
    short = replace(sample, target_text="مرحبا")
    cloner.generate(short, GenerationSettings(max_new_tokens=10_000))
    assert budgets == [FRAMES_PER_CHAR * len("مرحبا") + SLACK_FRAMES]
    cloner.generate(short, GenerationSettings(max_new_tokens=7))  # the flag is a cap too
    cloner.generate(short, GenerationSettings(max_new_tokens=10_000, cap_by_text=False))
    assert budgets[1:] == [7, 10_000]


def test_stopped_means_generate_closed_the_stream(cloner, sample, monkeypatch):
    # generate() closes a stream by forcing EOS into codebooks 0..C-2 and ends the segment before the
    # last codebook's own EOS column: such a stream is "stopped"; one cut mid-closing is not.
    closed = with_stream_tokens(torch.arange(3 * C).reshape(C, 3))
    closed[-1, -1] = 77  # the last codebook's final entry is whatever the model sampled
    cut = closed[:, :-2].clone()  # cut by max_new_tokens while the closing was under way
    for stream, expected in ((closed, True), (cut, False)):
        monkeypatch.setattr(cloner.model, "generate", lambda _s=stream, **kw: (kw["input_ids"], [_s]))
        assert cloner.generate(sample, GenerationSettings(**GREEDY)).stopped is expected
