"""LoRA layers take their input in the autocast dtype: no fp32 round trip per adapted layer, same training."""

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from higgs_lora.data.collator import DictCollator, build_collator
from higgs_lora.model.load import apply_lora, load_model
from higgs_lora.model.precision import Precision, match_audio_embedding_dtype, upcast_trainable
from higgs_lora.train.loss import compute_loss


class _CastBytes(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.bytes = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if (
            func.overloadpacket is torch.ops.aten._to_copy
            and args[0].is_floating_point()
            and out.dtype != args[0].dtype
        ):
            self.bytes += out.nbytes
        return out


@pytest.fixture(scope="module")
def batch(tiny_dataset, tiny_config):
    return DictCollator(build_collator(tiny_config))([tiny_dataset[0], tiny_dataset[1]])


def _model(fixed: bool):
    torch.manual_seed(0)  # the same adapter initialisation for both schemes
    model = apply_lora(load_model("tiny", device="cpu", dtype="bf16"), 8, 16, 0.0)
    if fixed:
        Precision("bf16", "cpu").prepare(model)
    else:  # the scheme before: PEFT casts each adapted layer's input to the fp32 adapter dtype
        match_audio_embedding_dtype(model)
        upcast_trainable(model)
    return model


def _curve(model, batch, steps=6):
    torch.manual_seed(0)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=5e-3)
    losses = []
    for _ in range(steps):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = model(**batch)
        loss = compute_loss(out, batch["label_audio_ids"]).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())
    return losses


def test_adapters_cast_no_activation_to_fp32(batch):
    written = {}
    for fixed in (False, True):
        model = _model(fixed)
        with _CastBytes() as casts, torch.autocast("cpu", dtype=torch.bfloat16):
            model(**batch)
        written[fixed] = casts.bytes
    assert written[True] < 0.8 * written[False]


def test_the_loss_curve_is_unchanged(batch):
    before, after = _curve(_model(False), batch), _curve(_model(True), batch)
    assert after[-1] < after[0]  # it trains
    assert after == pytest.approx(before, rel=1e-4)


def test_adapter_weights_and_gradients_stay_fp32(batch):
    model = _model(True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        compute_loss(model(**batch), batch["label_audio_ids"]).loss.backward()
    lora = [p for n, p in model.named_parameters() if "lora_" in n]
    assert lora and all(p.dtype == torch.float32 and p.grad.dtype == torch.float32 for p in lora)
