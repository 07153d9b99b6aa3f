"""The `HiggsAudioModel` under a PEFT wrapper, or the model itself when it has none.

PEFT injects its LoRA layers into the base model's own modules, so patches on the model instance
(precision, the labelled heads, the routed DualFFN layers) and calls of its own methods (generate,
the decoder layers) go to this object whether or not an adapter is attached.
"""

from __future__ import annotations


def base_model(model):
    return model.get_base_model() if hasattr(model, "get_base_model") else model
