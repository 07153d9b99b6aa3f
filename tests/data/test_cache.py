"""The on-disk code cache: encode once, int16, lazy reads, crash safety, failures, require_cache, 2 ranks."""

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from higgs_lora.data.cache import CacheMissingError, CodeCache, codec_identity, file_sha256
from higgs_lora.data.cache_sharding import path_owner
from higgs_lora.data.codes import TinyCodec
from higgs_lora.data.collator import DictCollator, build_collator
from higgs_lora.data.dataset import BadSamplesError, VoiceCloningDataset
from higgs_lora.data.sample import CloneSample


class CountingCodec(TinyCodec):
    """TinyCodec that counts its encoder calls (same identity as `tiny`)."""

    def __init__(self):
        super().__init__()
        self.calls = []

    def encode(self, audio_path_or_wv, sr=None):
        self.calls.append(str(audio_path_or_wv))
        return super().encode(audio_path_or_wv, sr)


@pytest.fixture
def clips(tmp_path, sample_samples):
    """Private copies of four clips (tests may damage them)."""
    src = list(dict.fromkeys(p for s in sample_samples[:4] for p in (s.ref_audio, s.target_audio)))[:4]
    out = []
    for i, path in enumerate(src):
        dst = tmp_path / "audio" / f"c{i}.wav"
        dst.parent.mkdir(exist_ok=True)
        shutil.copy(path, dst)
        out.append(str(dst))
    return out


def _samples(clips, pairs):
    return [CloneSample("ref text", clips[a], "target text", clips[b], "sys", f"s{a}") for a, b in pairs]


def test_second_run_calls_the_encoder_zero_times_and_shared_clips_once(clips, tmp_path, tiny_tokenizer):
    samples = _samples(clips, [(0, 1), (0, 2), (0, 3), (1, 2)])  # clip 0 is the reference of three samples
    codec = CountingCodec()
    first = VoiceCloningDataset(samples, tiny_tokenizer, codec, cache_dir=tmp_path / "cache")
    assert sorted(codec.calls) == sorted(clips)  # 8 clip uses, 4 distinct files, 4 encodes

    again = CountingCodec()
    second = VoiceCloningDataset(samples, tiny_tokenizer, again, cache_dir=tmp_path / "cache")
    assert again.calls == []
    for i in range(len(samples)):
        assert torch.equal(first[i].audio_ids_concat, second[i].audio_ids_concat)
    # the same content under another name is one entry, not a second encode
    twin = tmp_path / "audio" / "twin.wav"
    shutil.copy(clips[3], twin)
    third = CountingCodec()
    VoiceCloningDataset(_samples([clips[0], str(twin)], [(0, 1)]), tiny_tokenizer, third, cache_dir=tmp_path / "cache")
    assert third.calls == []


def test_codes_are_stored_as_int16_and_match_the_codec(clips, tmp_path, tiny_tokenizer):
    codec = TinyCodec()
    dataset = VoiceCloningDataset(_samples(clips, [(0, 1)]), tiny_tokenizer, codec, cache_dir=tmp_path / "c")
    cache = dataset.cache
    entry = cache.entry_file(file_sha256(clips[0]))
    stored = np.load(entry)
    assert stored.dtype == np.int16
    np.testing.assert_array_equal(stored, codec.encode(clips[0]).numpy())
    assert entry.stat().st_size < 2 * stored.size + 200  # two bytes a code (plus the .npy header)
    assert dataset.codes(clips[0]).dtype == np.int64
    with pytest.raises(ValueError, match="int16"):
        cache.put("x" * 64, np.array([[0, 40000]]))


def test_training_reads_codes_lazily_from_disk(clips, tmp_path, tiny_tokenizer):
    dataset = VoiceCloningDataset(
        _samples(clips, [(0, 1), (2, 3)]), tiny_tokenizer, TinyCodec(), cache_dir=tmp_path / "c"
    )
    # the dataset keeps no code arrays in memory, only where they live
    assert not any(isinstance(v, np.ndarray) and v.ndim == 2 and v.shape[0] == 8 for v in vars(dataset).values())
    key = file_sha256(clips[1])
    assert isinstance(dataset.cache.load(key), np.memmap)
    # change the stored codes behind the dataset's back: the next read sees the new values
    entry = dataset.cache.entry_file(key)
    codes = np.load(entry)
    dataset.cache.put(key, np.full_like(codes, 7))
    n_ref = dataset.codes(clips[0]).shape[1]
    assert (dataset[0].audio_ids_concat[:, n_ref:] == 7).all()


def test_failure_mid_write_leaves_no_entry_and_the_rerun_encodes_it(clips, tmp_path, tiny_tokenizer, monkeypatch):
    codec = CountingCodec()
    real_save = np.save

    def crash(f, arr, **kw):
        f.write(b"\x93NUMPY partial")  # half of an entry reaches the disk, then the process "dies"
        raise OSError("disk full")

    monkeypatch.setattr(np, "save", crash)
    cache = CodeCache.for_codec(tmp_path / "c", codec)
    report = cache.build(codec, clips[:2])
    assert set(report.failed) == set(clips[:2]) and all("disk full" in r for r in report.failed.values())
    files = [p for p in cache.dir.rglob("*") if p.is_file() and p.suffix == ".npy" or ".tmp" in p.name]
    assert files == []  # neither an entry nor a temporary file is left behind
    assert not cache.has(file_sha256(clips[0]))

    monkeypatch.setattr(np, "save", real_save)
    codec.calls.clear()
    report = cache.build(codec, clips[:2])
    assert report.failed == {} and sorted(codec.calls) == sorted(clips[:2])


def test_damaged_entry_never_reads_as_valid_and_is_encoded_again(clips, tmp_path):
    codec = CountingCodec()
    cache = CodeCache.for_codec(tmp_path / "c", codec)
    cache.build(codec, clips[:1])
    entry = cache.entry_file(file_sha256(clips[0]))
    entry.write_bytes(entry.read_bytes()[:100])  # truncated by a crash of something else
    with pytest.raises(ValueError):
        cache.load(file_sha256(clips[0]))
    os.utime(clips[0])  # the file is touched: its record no longer matches, so it is checked again
    codec.calls.clear()
    report = cache.build(codec, clips[:1])
    assert codec.calls == clips[:1] and not report.failed
    assert cache.load(file_sha256(clips[0])).shape[0] == 8


def test_codec_identity_separates_caches(tmp_path):
    class Other(TinyCodec):
        num_codebooks = 4

    a = CodeCache.for_codec(tmp_path, TinyCodec())
    b = CodeCache.for_codec(tmp_path, Other())
    assert a.dir != b.dir
    assert codec_identity(TinyCodec())["num_codebooks"] == 8


def test_a_clip_that_fails_to_decode_is_recorded_and_the_rest_are_encoded(clips, tmp_path, tiny_tokenizer):
    broken = tmp_path / "audio" / "broken.wav"
    broken.write_bytes(b"RIFF\x00\x00\x00\x00WAVEgarbage" * 10)
    samples = _samples(clips + [str(broken)], [(0, 1), (0, 4), (2, 3), (4, 1)])
    codec = CountingCodec()
    with pytest.raises(ValueError) as err:
        VoiceCloningDataset(samples, tiny_tokenizer, codec, cache_dir=tmp_path / "c")
    message = str(err.value)
    assert "1 audio file(s) could not be encoded, affecting 2 sample(s) [1, 3]" in message
    assert str(broken) in message and "--skip_invalid" in message
    assert sorted(codec.calls) == sorted(clips + [str(broken)])  # everything else was encoded

    codec.calls.clear()
    dataset = VoiceCloningDataset(samples, tiny_tokenizer, codec, cache_dir=tmp_path / "c", skip_invalid=True)
    assert codec.calls == [str(broken)]  # only the failure is tried again
    assert len(dataset) == 2 and dataset.source_indices == [0, 2]
    assert [s["index"] for s in dataset.skipped] == [1, 3]
    assert str(broken) in dataset.skipped[0]["files"] and dataset.failed_files[str(broken)]
    assert dataset.samples == [samples[0], samples[2]]


def test_missing_file_is_a_failure_with_its_reason(clips, tmp_path):
    cache = CodeCache.for_codec(tmp_path / "c", TinyCodec())
    report = cache.build(TinyCodec(), [clips[0], str(tmp_path / "gone.wav")])
    assert list(report.failed) == [str(tmp_path / "gone.wav")]
    assert "not found" in report.failed[str(tmp_path / "gone.wav")]


def test_require_cache_encodes_nothing_and_names_the_tokenize_command(clips, tmp_path, tiny_tokenizer):
    samples = _samples(clips, [(0, 1), (2, 3)])
    codec = CountingCodec()
    VoiceCloningDataset(samples[:1], tiny_tokenizer, codec, cache_dir=tmp_path / "c")
    codec.calls.clear()
    with pytest.raises(CacheMissingError) as err:
        VoiceCloningDataset(
            samples,
            tiny_tokenizer,
            codec,
            cache_dir=tmp_path / "c",
            require_cache=True,
            data_path="data.json",
            audio_tokenizer="tiny",
        )
    assert codec.calls == []
    assert "2 of 4 audio files are not in the code cache" in str(err.value)
    assert f"higgs-lora tokenize data.json --audio_tokenizer tiny --cache_dir {tmp_path / 'c'}" in str(err.value)
    VoiceCloningDataset(samples[:1], tiny_tokenizer, codec, cache_dir=tmp_path / "c", require_cache=True)


def test_sample_failing_at_read_time_is_skipped_counted_then_aborts(clips, tmp_path, tiny_tokenizer, tiny_config):
    samples = _samples(clips, [(0, 1), (2, 3), (1, 2), (3, 0)])
    dataset = VoiceCloningDataset(samples, tiny_tokenizer, TinyCodec(), cache_dir=tmp_path / "c", max_bad_samples=1)
    expected_next = dataset[1]
    dataset.cache.entry_file(file_sha256(clips[1])).unlink()  # used by samples 0 and 2
    # through a DataLoader as Trainer builds it: sample 0 is replaced by sample 1, and counted
    loader = torch.utils.data.DataLoader(dataset, batch_size=1, collate_fn=DictCollator(build_collator(tiny_config)))
    first = next(iter(loader))
    assert torch.equal(first["input_ids"][0], expected_next.input_ids)
    assert list(dataset.bad_samples) == [0]
    with pytest.raises(
        BadSamplesError, match=r"2 samples failed at read time, more than --max_bad_samples 1.*sample 0.*sample 2"
    ):
        dataset[2]


def _split_between_two_ranks(clips):
    """Rename the clips so each rank owns two. Ownership hashes the path, which holds pytest's numbered
    temporary folder: left to chance, about one session in ten gave all four clips to one rank."""
    out = []
    for i, path in enumerate(clips):
        for k in range(64):
            name = Path(path).with_name(f"r{i}_{k}.wav")
            if path_owner(str(name), 2) == i % 2:
                os.replace(path, name)
                out.append(str(name))
                break
    assert len(out) == len(clips)
    return out


def test_two_processes_encode_each_file_exactly_once(clips, tmp_path):
    clips = _split_between_two_ranks(clips)
    script = tmp_path / "worker.py"
    script.write_text(
        textwrap.dedent(f"""
        import json, sys
        import torch.distributed as dist
        from higgs_lora.data.cache import CodeCache
        from higgs_lora.data.codes import TinyCodec

        rank = int(sys.argv[1])
        dist.init_process_group("gloo", init_method="file://{tmp_path}/pg", rank=rank, world_size=2)
        calls = []

        class Counting(TinyCodec):
            def encode(self, path, sr=None):
                calls.append(str(path))
                return super().encode(path, sr)

        codec = Counting()
        report = CodeCache.for_codec("{tmp_path}/cache", codec).build(codec, {clips!r} * 2)
        json.dump({{"calls": calls, "entries": sorted((p, e.key) for p, e in report.entries.items()),
                   "failed": report.failed}}, open("{tmp_path}/rank%d.json" % rank, "w"))
        dist.destroy_process_group()
    """)
    )
    # Variables a launcher (or an earlier test) may have left would tell the workers another world.
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")
        and not k.startswith("ACCELERATE_")
    }
    env["OMP_NUM_THREADS"] = "1"
    procs = [subprocess.Popen([sys.executable, str(script), str(r)], env=env) for r in range(2)]
    try:
        # two torch imports and a gloo rendezvous on a loaded two-core machine can take minutes
        assert [p.wait(timeout=300) for p in procs] == [0, 0]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    import json

    results = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    all_calls = results[0]["calls"] + results[1]["calls"]
    assert sorted(all_calls) == sorted(clips)  # each file encoded once, by one of the ranks
    for rank in range(2):  # the work was shared, each rank encoding exactly its own share
        assert sorted(results[rank]["calls"]) == sorted(c for c in clips if path_owner(c, 2) == rank) != []
    assert results[0]["entries"] == results[1]["entries"] and len(results[0]["entries"]) == len(clips)
    assert results[0]["failed"] == results[1]["failed"] == {}
