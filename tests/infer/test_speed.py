"""The speed probe the GPU check calls, run on CPU at the tiny shape."""

from higgs_lora.infer.speed import compare_cache_paths, measure
from higgs_lora.infer.engine import GenerationSettings, VoiceCloner


def test_measure_counts_generated_columns_per_second(tiny_model_factory, tiny_tokenizer, tiny_codec, sample_samples):
    cloner = VoiceCloner(tiny_model_factory(), tiny_tokenizer, tiny_codec)
    result = measure(cloner, sample_samples[0], GenerationSettings(max_new_tokens=20, temperature=0, ras_win_len=0),
                     repeats=2, warmup=1)
    assert [r["columns"] for r in result["runs"]] == [result["last_codes"].shape[1]] * 2
    total = sum(r["columns"] for r in result["runs"]) / sum(r["seconds"] for r in result["runs"])
    assert result["columns_per_s"] == total > 0
    assert result["realtime_factor"] == total / 25 and result["cache"] == "dynamic" and not result["cuda_graphs"]


def test_compare_cache_paths_agree_on_cpu(tiny_model_factory, tiny_tokenizer, tiny_codec, sample_samples):
    report = compare_cache_paths(tiny_model_factory(), tiny_tokenizer, tiny_codec, sample_samples[0],
                                 max_new_tokens=20, repeats=1, cache_lengths=(128, 1024))
    assert report["same_codes"] is True
    assert report["dynamic"]["cache"] == "dynamic" and report["static"]["cache"] == "static"
    assert report["speedup"] > 0
