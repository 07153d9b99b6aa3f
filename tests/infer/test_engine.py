"""Voice-cloning inference: generate() inputs, the raw stream layout, stripping, decoding."""

import copy

import numpy as np
import pytest
import torch
from boson_multimodal.model.higgs_audio.utils import build_delay_pattern_mask

from higgs_lora.data.sample import GENERATION_PREFIX, inference_prompt
from higgs_lora.infer.chunking import split_text
from higgs_lora.infer.engine import (
    UPSTREAM_STOP_STRINGS,
    ChunkSettings,
    GenerationSettings,
    InferenceInputs,
    VoiceCloner,
)

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
    assert prompt[-len(suffix) :] == suffix
    assert prompt[-1] == tiny_config.audio_out_bos_token_id
    # the reference clip is one assistant audio turn: a single <|AUDIO_OUT|> placeholder, no <|AUDIO|>
    assert prompt.count(tiny_config.audio_out_token_idx) == 1
    assert prompt.count(tiny_config.audio_in_token_idx) == 0
    assert bool(inputs["attention_mask"].all())
    assert "label_ids" not in inputs and "label_audio_ids" not in inputs


def test_audio_out_ids_are_the_reference_codes_with_stream_tokens_and_delay(
    tiny_tokenizer, tiny_codec, tiny_config, sample
):
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


def test_generate_arabic_speech_takes_model_adapter_and_codec_from_keywords(sample):
    from higgs_lora.infer import engine

    wav, sr = engine.generate_arabic_speech(
        sample.ref_text,
        sample.ref_audio,
        sample.target_text,
        temperature=0.0,
        model_path="tiny",
        audio_tokenizer="tiny",
        max_new_tokens=12,
    )
    assert sr == 24000 and wav.dtype == np.float32 and wav.ndim == 1
    # at most 12 columns: at most 3 frames once the BOS, delay and last columns are stripped
    assert 0 < len(wav) <= (12 - C - 1) * 960 and len(wav) % 960 == 0


@pytest.mark.parametrize("text", ["", "  \t\n"])
def test_generate_arabic_speech_refuses_empty_text_with_the_validation_reason(sample, text):
    from higgs_lora.data.formats import SampleError
    from higgs_lora.infer import engine

    with pytest.raises(SampleError, match="empty_text") as info:
        engine.generate_arabic_speech(
            sample.ref_text, sample.ref_audio, text, model_path="tiny", audio_tokenizer="tiny"
        )
    assert info.value.reason == "empty_text"


def test_design_snippet_with_tiny_in_the_environment(sample, monkeypatch):
    """The design's test, as written there: three positional arguments, no model path."""
    import arb_inference

    monkeypatch.setenv("HIGGS_LORA_MODEL", "tiny")
    monkeypatch.setenv("HIGGS_LORA_AUDIO_TOKENIZER", "tiny")
    monkeypatch.delenv("HIGGS_LORA_LORA_PATH", raising=False)
    ref_text, ref_audio_path, target_text = sample.ref_text, sample.ref_audio, sample.target_text

    result = arb_inference.generate_arabic_speech(ref_text, ref_audio_path, target_text)

    assert result is not None
    assert len(result[0]) > 0  # Generated audio
    assert result[1] == 24000


# --- static KV cache (the CUDA path, without graphs on CPU) -------------------------------------


def test_static_cache_gives_the_codes_of_the_dynamic_cache(tiny_model_factory, tiny_tokenizer, tiny_codec, sample):
    model = tiny_model_factory()
    dynamic = VoiceCloner(model, tiny_tokenizer, tiny_codec, cache="dynamic")
    # buckets: the prompt (with its reference columns) outgrows the first, so the copy to the next runs too
    static = VoiceCloner(model, tiny_tokenizer, tiny_codec, cache="static", cache_lengths=(64, 1024))
    assert dynamic.cache_mode == "dynamic" and dynamic.kv_caches is None  # what "auto" picks on CPU
    assert static.cache_mode == "static" and list(static.kv_caches) == [64, 1024] and not static.cuda_graphs
    # one cache layer per text layer and per DualFFN layer, as the serve engine sizes them
    config = model.config
    assert len(static.kv_caches[64].key_cache) == config.text_config.num_hidden_layers + len(
        config.audio_dual_ffn_layers
    )
    settings = GenerationSettings(max_new_tokens=40, **GREEDY)
    for _ in range(2):  # twice: the caches are reset between calls
        a, b = dynamic.generate(sample, settings), static.generate(sample, settings)
        assert a.raw_codes.shape[1] > C + 1
        assert np.array_equal(a.raw_codes, b.raw_codes) and a.stopped == b.stopped
    assert static.net.current_past_key_values_bucket == 1024  # the static path really ran (and was promoted)
    # chunked long text with context: still the same codes
    from dataclasses import replace

    long = replace(sample, target_text=" ".join([sample.target_text] * 3))
    chunking = ChunkSettings(max_chars=40, context_chunks=1)
    _, _, ra = dynamic.clone(long, settings, chunking)
    _, _, rb = static.clone(long, settings, chunking)
    assert len(ra.chunks) >= 2 and np.array_equal(ra.codes, rb.codes)


def test_static_cache_falls_back_to_dynamic_when_the_sequence_cannot_fit(
    tiny_model_factory, tiny_tokenizer, tiny_codec, sample
):
    model = tiny_model_factory()
    static = VoiceCloner(model, tiny_tokenizer, tiny_codec, cache="static", cache_lengths=(64,))
    settings = GenerationSettings(max_new_tokens=20, **GREEDY)
    expected = VoiceCloner(model, tiny_tokenizer, tiny_codec, cache="dynamic").generate(sample, settings)
    assert np.array_equal(static.generate(sample, settings).raw_codes, expected.raw_codes)


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
    closed = _with_stream_tokens(torch.arange(3 * C).reshape(C, 3))
    closed[-1, -1] = 77  # the last codebook's final entry is whatever the model sampled
    cut = closed[:, :-2].clone()  # cut by max_new_tokens while the closing was under way
    for stream, expected in ((closed, True), (cut, False)):
        monkeypatch.setattr(cloner.model, "generate", lambda _s=stream, **kw: (kw["input_ids"], [_s]))
        assert cloner.generate(sample, GenerationSettings(**GREEDY)).stopped is expected


class _EagerGraphRunner(torch.nn.Module):
    """CPU stand-in for boson's CUDAGraphRunner: capture runs the same warm-up forward on the dummy
    inputs `capture_model` builds (a dtype mismatch fails there as on a GPU); replay runs the core
    forward eagerly on the cache captured, ignoring the one passed, as a replayed graph does."""

    calls = 0

    def __init__(self, model):
        super().__init__()
        self.model = model

    def capture(self, past_key_values, is_decoding_audio_token=None, stream=None, **inputs):
        self.cache, self.audio = past_key_values, is_decoding_audio_token
        self.model(past_key_values=past_key_values, is_decoding_audio_token=is_decoding_audio_token, **inputs)
        self.captured_dtype = inputs["hidden_states"].dtype

    def forward(
        self,
        hidden_states,
        causal_mask,
        position_ids,
        audio_discrete_codes_mask,
        cache_position,
        audio_attention_mask,
        fast_forward_attention_mask,
        **kwargs,
    ):
        type(self).calls += 1
        out = self.model(
            hidden_states=hidden_states,
            causal_mask=causal_mask,
            position_ids=position_ids,
            audio_discrete_codes_mask=audio_discrete_codes_mask,
            cache_position=cache_position,
            past_key_values=self.cache,
            use_cache=True,
            audio_attention_mask=audio_attention_mask,
            fast_forward_attention_mask=fast_forward_attention_mask,
            output_attentions=False,
            output_hidden_states=False,
            is_decoding_audio_token=self.audio,
            is_using_cuda_graph=True,
        )
        return out[0], None, None


@pytest.fixture
def eager_graphs(monkeypatch):
    from boson_multimodal.model.higgs_audio import modeling_higgs_audio

    monkeypatch.setattr(modeling_higgs_audio, "CUDAGraphRunner", _EagerGraphRunner)
    monkeypatch.setattr(torch.cuda, "Stream", lambda device=None: None)
    _EagerGraphRunner.calls = 0
    return _EagerGraphRunner


def test_graph_path_with_an_unmerged_adapter_gives_the_codes_of_the_dynamic_cache(
    tiny_model_factory, tiny_tokenizer, tiny_codec, sample, eager_graphs
):
    """What `capture_model` does on CUDA, emulated: decode steps go through the runners captured on
    the static caches (LoRA layers inside), reset between calls, promoted across buckets."""
    from higgs_lora.model.load import apply_lora

    model = apply_lora(tiny_model_factory(), 4, 8, 0.0, ["self_attn.q_proj", "audio_mlp.up_proj"]).eval()
    with torch.no_grad():  # a non-zero update, so the adapter changes what the graphs compute
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.5)
    settings = GenerationSettings(max_new_tokens=40, **GREEDY)
    expected = VoiceCloner(model, tiny_tokenizer, tiny_codec, cache="dynamic").generate(sample, settings)
    graphs = VoiceCloner(model, tiny_tokenizer, tiny_codec, cache="static", cache_lengths=(64, 1024), cuda_graphs=True)
    assert graphs.cuda_graphs and set(graphs.net.decode_graph_runners) == {64, 1024}
    for _ in range(2):
        calls = eager_graphs.calls
        got = graphs.generate(sample, settings)
        assert eager_graphs.calls - calls >= got.raw_codes.shape[1] - 1  # every decode step replayed a graph
        assert np.array_equal(got.raw_codes, expected.raw_codes)


def test_graphs_are_captured_in_the_dtype_the_weights_were_loaded_in(tiny_tokenizer, tiny_codec, sample, eager_graphs):
    """`capture_model` builds its dummy hidden states in `config.torch_dtype`, the dtype the weights are
    STORED in, not the one they were loaded in (bf16 on CUDA by default; an fp32 merge loads as bf16)."""
    from higgs_lora.model.load import load_model

    model = load_model("tiny", device="cpu", dtype="bf16")
    assert model.config.torch_dtype == torch.float32  # the tiny model is stored in fp32
    cloner = VoiceCloner(model, tiny_tokenizer, tiny_codec, cache="static", cache_lengths=(64, 1024), cuda_graphs=True)
    runners = [r for by_kind in cloner.net.decode_graph_runners.values() for r in by_kind.values()]
    assert len(runners) == 4 and all(r.captured_dtype == torch.bfloat16 for r in runners)
    assert model.config.torch_dtype == torch.float32  # the model's config is left as it was
    got = cloner.generate(sample, GenerationSettings(max_new_tokens=12, **GREEDY))
    assert got.raw_codes.shape[1] > 1
