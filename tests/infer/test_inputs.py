"""Generation inputs: the inference prompt, the reference codes in boson's stream layout, the device."""

import numpy as np
import torch
from stream_layout import C, with_stream_tokens

from higgs_lora.data.sample import GENERATION_PREFIX, inference_prompt
from higgs_lora.infer.inputs import InferenceInputs


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


def test_audio_out_ids_are_the_reference_codeswith_stream_tokens_and_delay(
    tiny_tokenizer, tiny_codec, tiny_config, sample
):
    maker = InferenceInputs(tiny_tokenizer, tiny_codec, tiny_config)
    reference = tiny_codec.encode(sample.ref_audio)
    (codes,) = maker.reference_codes(sample)
    assert codes.dtype == np.int64 and np.array_equal(codes, reference.numpy())
    inputs = maker(sample)
    expected = with_stream_tokens(reference)
    assert expected.shape == (C, reference.shape[1] + 2 + C - 1)
    assert torch.equal(inputs["audio_out_ids"], expected)
    assert inputs["audio_out_ids_start"].tolist() == [0]


def test_inputs_move_to_the_requested_device(tiny_tokenizer, tiny_codec, tiny_config, sample):
    inputs = InferenceInputs(tiny_tokenizer, tiny_codec, tiny_config)(sample, device="meta")
    assert all(v.device.type == "meta" for v in inputs.values() if isinstance(v, torch.Tensor))
