"""The host-side merged layout is what boson's forward computes on the device, for every padding case."""

import pytest
import torch
from boson_multimodal.model.higgs_audio.utils import merge_input_ids_with_audio_features

from higgs_lora.data.collator import DictCollator, build_collator, make_chatml_sample
from higgs_lora.data.dataset import VoiceCloningDataset
from higgs_lora.train import decoder, layout

SIZES = [2, 1, 3]  # right padding, left padding (a batch of one), uneven lengths


@pytest.fixture(scope="module")
def dataset(sample_samples, tiny_tokenizer, tiny_codec):
    return VoiceCloningDataset(sample_samples[:3], tiny_tokenizer, tiny_codec)


@pytest.fixture(scope="module")
def model(tiny_model_factory):
    return tiny_model_factory().eval()


def _batch(dataset, config, n):
    return DictCollator(build_collator(config))([dataset[i] for i in range(n)])


@pytest.mark.parametrize("n", SIZES)
def test_layout_equals_the_models_own_merge_outputs(model, dataset, n):
    batch = _batch(dataset, model.config, n)
    with torch.no_grad():
        out = model(**batch)
    lay = layout.merged_layout(batch, model.config)
    assert torch.equal(lay["attention_mask"], out.attention_mask)
    assert torch.equal(lay["labels"], out.expanded_labels)
    assert torch.equal(lay["audio_out_mask"], out.audio_out_mask)
    assert torch.equal(lay["codes_mask"], out.audio_in_discrete_codes_mask | out.audio_out_mask)
    assert lay["right_padded"] == (n > 1)
    assert lay["mask_all_ones"] == bool(out.attention_mask.bool().all())
    # the DualFFN split: every position once, audio rows exactly the code positions, in order
    rows = torch.cat([lay["ffn_audio_rows"], lay["ffn_text_rows"]])
    assert torch.equal(rows.sort().values, torch.arange(out.attention_mask.numel()))
    assert torch.equal(lay["ffn_audio_rows"], torch.nonzero(lay["codes_mask"].flatten()).flatten())


@pytest.mark.parametrize("n", SIZES)
def test_gathering_by_source_gives_boson_merge_of_the_real_embeddings(model, dataset, n):
    """The carriers stand in for embeddings: gathering the real ones by `source` is boson's merge of them."""
    batch = _batch(dataset, model.config, n)
    lay = layout.merged_layout(batch, model.config)
    no_codes = torch.zeros((model.config.audio_num_codebooks, 0), dtype=torch.long)
    audio_in = batch.get("audio_in_ids", no_codes)  # the voice-clone prompt: the reference is audio-out too
    with torch.no_grad():
        embeds = model.embed_tokens(batch["input_ids"])
        merged = merge_input_ids_with_audio_features(
            None,
            None,
            model._embed_audio_ids(audio_in),
            batch.get("audio_in_ids_start"),
            model._embed_audio_ids(batch["audio_out_ids"]),
            batch["audio_out_ids_start"],
            model.config.audio_in_token_idx,
            model.config.audio_out_token_idx,
            embeds,
            batch["input_ids"],
            batch["attention_mask"],
            batch["label_ids"],
            pad_token_id=model.config.pad_token_id,
            round_to=8,
            left_padding=n == 1,
        )
        gathered = decoder.merged_embeddings(model, lay, batch["input_ids"], audio_in, batch["audio_out_ids"])
    assert torch.equal(gathered, merged[0])
    assert torch.equal(lay["position_ids"], merged[3])
    assert (lay["source"] > 0).sum() > 0 and bool((gathered[lay["source"] == 0] == 0).all())


def test_a_text_only_batch_has_no_audio_rows(model, tiny_tokenizer):
    ids = tiny_tokenizer.encode("no audio anywhere in this one", add_special_tokens=False)
    batch = DictCollator(build_collator(model.config))([make_chatml_sample(ids, [-100] * 4 + ids[4:], [])] * 2)
    lay = layout.merged_layout(batch, model.config)
    assert lay["ffn_audio_rows"].numel() == 0 and not lay["codes_mask"].any()
    with torch.no_grad():
        out = model(**batch)
    assert torch.equal(lay["labels"], out.expanded_labels)
    assert torch.equal(lay["attention_mask"], out.attention_mask)


def test_configs_with_a_whisper_tower_keep_upstreams_merge(model):
    config = model.config
    assert layout.supported(config)  # the released layout: discrete codes in, no tower
    tower = type(config).from_dict(config.to_dict() | {"skip_audio_tower": False})
    assert not layout.supported(tower)
