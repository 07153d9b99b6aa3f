"""The random-weight model folder gpu-check writes loads as a user's model loads."""

import torch

from higgs_lora.bench.random_model import attention_implementation, build_config, load_check_model, write_model_folder


def test_check_model_gets_the_attention_users_get(tmp_path):
    """gpu-check must time the attention `train` runs: `load_model` (from_pretrained) picks SDPA, while a
    HiggsAudioModel built directly from the shipped config (`_attn_implementation_autoset: true`) stays eager."""
    from higgs_lora.model.load import load_model

    folder = write_model_folder(build_config("small"), tmp_path / "m", "cpu", torch.float32)
    checked = load_check_model(folder, "cpu", torch.float32)
    users = load_model("tiny", device="cpu", dtype="fp32")
    assert attention_implementation(checked) == attention_implementation(users) == "sdpa"
    assert type(checked.layers[0].self_attn) is type(users.layers[0].self_attn)
    assert checked.config.use_cache is False  # training's setting; the infer phase turns it on
