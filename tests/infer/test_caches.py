"""KV caches: the static buckets (the CUDA path, without graphs on CPU) give the dynamic cache's codes,
fall back when a sequence cannot fit, and CUDA graphs (emulated on CPU) are captured in the loaded dtype."""

import numpy as np
import pytest
import torch
from stream_layout import GREEDY, C

from higgs_lora.infer.engine import VoiceCloner
from higgs_lora.infer.settings import ChunkSettings, GenerationSettings


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
