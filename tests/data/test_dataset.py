"""VoiceCloningDataset: fresh tensors, the label layout of its collated samples, lengths and frames from the cache."""

import numpy as np
import pytest
import torch

from higgs_lora.data.collator import DictCollator, build_collator
from higgs_lora.data.dataset import VoiceCloningDataset
from higgs_lora.data.sample import inference_chatml, training_chatml

EOS = 1025
BOS = 1024


def _segments(batch, field):
    """Split a (C, total) audio-out tensor into its per-segment parts using audio_out_ids_start."""
    tensor = getattr(batch, field)
    bounds = batch.audio_out_ids_start.tolist() + [tensor.shape[1]]
    return [tensor[:, a:b] for a, b in zip(bounds[:-1], bounds[1:])]


def test_every_read_builds_fresh_tensors(tiny_dataset):
    a, b = tiny_dataset[0], tiny_dataset[0]
    for name in ("input_ids", "label_ids", "audio_ids_concat", "audio_ids_start"):
        ta, tb = getattr(a, name), getattr(b, name)
        assert torch.equal(ta, tb)
        assert ta.data_ptr() != tb.data_ptr(), name
    a.label_ids[:] = -100
    assert (tiny_dataset[0].label_ids != -100).any()


def test_collating_the_same_index_twice_keeps_the_audio_labels(tiny_dataset, tiny_config):
    collator = build_collator(tiny_config)
    first = collator([tiny_dataset[0]])
    second = collator([tiny_dataset[0]])  # second epoch
    assert (first.label_audio_ids != -100).any()
    assert torch.equal(first.label_audio_ids, second.label_audio_ids)
    assert torch.equal(first.label_ids, second.label_ids)


def test_reusing_one_sample_object_loses_its_audio_labels_upstream(tiny_dataset, tiny_config):
    """The hazard fresh tensors avoid: the upstream collator masks labels in place."""
    collator = build_collator(tiny_config)
    cached = tiny_dataset[0]
    first = collator([cached])
    second = collator([cached])
    assert (first.label_audio_ids != -100).any()
    assert (second.label_audio_ids == -100).all()


def test_dataset_has_one_entry_per_sample_and_caches_codes(tiny_dataset, tiny_codec, sample_samples):
    assert len(tiny_dataset) == 2
    for sample in sample_samples[:2]:
        for path in (sample.ref_audio, sample.target_audio):
            np.testing.assert_array_equal(tiny_dataset.codes(path), tiny_codec.encode(path).numpy())
    item = tiny_dataset[1]
    ref, target = sample_samples[1].ref_audio, sample_samples[1].target_audio
    n_ref = tiny_dataset.codes(ref).shape[1]
    assert item.audio_ids_start.tolist() == [0, n_ref]
    assert torch.equal(item.audio_ids_concat[:, :n_ref], torch.from_numpy(tiny_dataset.codes(ref)))
    assert torch.equal(item.audio_ids_concat[:, n_ref:], torch.from_numpy(tiny_dataset.codes(target)))


def test_dataset_refuses_samples_with_nothing_to_learn(sample_samples, tiny_tokenizer, tiny_codec):
    class FourMessages(VoiceCloningDataset):
        def chatml(self, sample):
            chatml = inference_chatml(sample)
            chatml.start_index = len(chatml.messages) - 1
            return chatml

    with pytest.raises(ValueError, match="sample 0: nothing to learn"):
        FourMessages(sample_samples[:1], tiny_tokenizer, tiny_codec)


def test_a_sample_boson_cannot_tokenize_is_named(sample_samples, tiny_tokenizer, tiny_codec):
    class Unreadable(VoiceCloningDataset):
        def chatml(self, sample):
            chatml = training_chatml(sample)
            if sample is sample_samples[1]:
                chatml.messages[1].content = [12345]  # neither text nor audio: upstream gives up on it
            return chatml

    with pytest.raises(ValueError, match="sample 1: boson_multimodal.prepare_chatml_sample could not tokenize"):
        Unreadable(sample_samples[:2], tiny_tokenizer, tiny_codec)


def test_dataset_refuses_a_codec_with_too_few_codebooks(sample_samples, tiny_tokenizer, tiny_codec):
    with pytest.raises(ValueError, match="codebooks"):
        VoiceCloningDataset(sample_samples[:1], tiny_tokenizer, tiny_codec, num_codebooks=12)


def test_reference_is_masked_and_target_holds_its_codes_plus_one_eos(tiny_dataset, tiny_config, sample_samples):
    batch = build_collator(tiny_config)([tiny_dataset[0], tiny_dataset[1]])
    labels = _segments(batch, "label_audio_ids")
    inputs = _segments(batch, "audio_out_ids")
    assert len(labels) == 4  # ref, target of sample 0; ref, target of sample 1
    for i, sample in enumerate(sample_samples[:2]):
        ref_labels, target_labels = labels[2 * i], labels[2 * i + 1]
        assert (ref_labels == -100).all()
        target_codes = tiny_dataset.codes(sample.target_audio)
        for c in range(8):
            row = target_labels[c]
            assert row[row != -100].tolist() == target_codes[c].tolist() + [EOS]
        # the reference still conditions the model: its codes are in the audio-out input
        ref_codes = tiny_dataset.codes(sample.ref_audio)
        for c in range(8):
            row = inputs[2 * i][c]
            assert row[(row != BOS) & (row != EOS)].tolist() == ref_codes[c].tolist()


def test_delay_pattern_offsets_codebook_c_by_c_columns(tiny_dataset, tiny_config):
    batch = build_collator(tiny_config)([tiny_dataset[0]])
    target = _segments(batch, "label_audio_ids")[1]
    first = [int(torch.nonzero(row != -100)[0]) for row in target]
    last = [int(torch.nonzero(row != -100)[-1]) for row in target]
    assert first == [first[0] + c for c in range(8)]
    assert last == [last[0] + c for c in range(8)]
    assert all(int(target[c, last[c]]) == EOS for c in range(8))
    assert target.shape[1] == last[7] + 1  # the segment ends with codebook 7's EOS
    assert (target[:, 0] == -100).all()  # first column of the segment is never a target


def test_text_labels_after_collation(tiny_dataset, tiny_config, tiny_tokenizer):
    batch = build_collator(tiny_config)([tiny_dataset[0], tiny_dataset[1]])
    for row in batch.label_ids:
        tokens = tiny_tokenizer.convert_ids_to_tokens(row[row != -100].tolist())
        assert tokens == ["<|audio_out_bos|>", "<|audio_eos|>", "<|eot_id|>"]
    # right padding with the pad id, masked in attention and labels
    lengths = [len(tiny_dataset[i].input_ids) for i in range(2)]
    short = int(np.argmin(lengths))
    pad = slice(min(lengths), max(lengths))
    assert (batch.input_ids[short, pad] == tiny_config.pad_token_id).all()
    assert (batch.attention_mask[short, pad] == 0).all()
    assert (batch.label_ids[short, pad] == -100).all()


def test_lengths_count_the_collated_sequence(tiny_dataset, tiny_config):
    """lengths() predicts the collated batch's length: text tokens with each clip's placeholder
    replaced by its audio columns (delay pattern, stream BOS/EOS included)."""
    from higgs_lora.data.collator import build_collator

    collator = DictCollator(build_collator(tiny_config))
    lengths = tiny_dataset.lengths()
    assert len(lengths) == len(tiny_dataset)
    for index, expected in enumerate(lengths):
        batch = collator([tiny_dataset[index]])
        n_text = batch["input_ids"].shape[1]
        n_audio = batch["audio_out_ids"].shape[1]
        n_placeholders = int((batch["input_ids"] == tiny_config.audio_out_token_idx).sum())
        assert expected == n_text - n_placeholders + n_audio


def test_items_carry_the_exact_labels_of_the_training_chatml(tiny_dataset, sample_samples, tiny_tokenizer):
    from higgs_lora.data.sample import tokenize_chatml, training_chatml

    for index in range(len(tiny_dataset)):
        input_ids, label_ids, _ = tokenize_chatml(training_chatml(sample_samples[index]), tiny_tokenizer)
        assert tiny_dataset[index].label_ids.tolist() == label_ids
        assert tiny_dataset[index].input_ids.tolist() == input_ids


def test_frames_come_from_the_cache_record_and_match_the_codes(tiny_dataset, monkeypatch):
    paths = {p for s in tiny_dataset.samples for p in (s.ref_audio, s.target_audio)}
    expected = {p: tiny_dataset.codes(p).shape[1] for p in paths}
    # frames() must not read codes: start-up sums them over every clip of a large corpus
    monkeypatch.setattr(type(tiny_dataset), "_load_codes", lambda *a: (_ for _ in ()).throw(AssertionError("read")))
    assert {p: tiny_dataset.frames(p) for p in paths} == expected
