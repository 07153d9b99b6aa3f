"""Runs inside the native-transformers subprocess (runtime.run_native): `python -m higgs_lora.native.worker JOBS.pt OUT.pt`.

JOBS.pt holds a list of jobs; OUT.pt gets one result per job, in order. Only the native transformers
and torch are imported here (plus the project's torchaudio stand-in, which the native codec module
needs at import time), never boson_multimodal.

Jobs (dicts with a "kind"):
- forward:  model_dir, input_ids, audio_input_ids, audio_input_ids_mask -> text_logits, audio_logits
- generate: the same inputs + frames -> audio_sequences (greedy, no repetition-aware resampling)
- prompt:   processor_dir, codec_dir, conversations (each with audio paths) -> input_ids, audio_input_ids
- codec:    codec_dir, wave (1-D float32 at 24 kHz), codes (C, T) -> codes of the wave, wave of the codes
- meta:     config (a native config dict) -> every weight name and shape of the model (meta device)
"""

from __future__ import annotations

import sys

import torch


def _model(model_dir: str):
    from transformers import HiggsAudioV2ForConditionalGeneration

    model = HiggsAudioV2ForConditionalGeneration.from_pretrained(
        model_dir, use_text_head=True, dtype=torch.float32, attn_implementation="eager"
    )
    return model.eval()


def forward(job: dict) -> dict:
    model = _model(job["model_dir"])
    with torch.no_grad():
        hidden = model.model(
            input_ids=job["input_ids"],
            audio_input_ids=job["audio_input_ids"],
            audio_input_ids_mask=job["audio_input_ids_mask"],
        ).last_hidden_state
        out = model(
            input_ids=job["input_ids"],
            audio_input_ids=job["audio_input_ids"],
            audio_input_ids_mask=job["audio_input_ids_mask"],
        )
    c = model.config
    return {
        "text_logits": model.text_lm_head(hidden),
        "audio_logits": out.logits.reshape(*out.logits.shape[:2], c.num_codebooks, c.codebook_size),
    }


def generate(job: dict) -> dict:
    model = _model(job["model_dir"])
    with torch.no_grad():
        out = model.generate(
            input_ids=job["input_ids"],
            audio_input_ids=job["audio_input_ids"],
            audio_input_ids_mask=job["audio_input_ids_mask"],
            attention_mask=torch.ones_like(job["input_ids"]),
            max_new_tokens=job["frames"],
            do_sample=False,
            ras_win_len=None,
            ras_win_max_num_repeat=None,
            return_dict_in_generate=True,
        )
    return {"audio_sequences": out.audio_sequences, "sequences": out.sequences}


def prompt(job: dict) -> dict:
    import soundfile as sf
    from transformers import AutoProcessor, HiggsAudioV2TokenizerModel

    codec = HiggsAudioV2TokenizerModel.from_pretrained(job["codec_dir"]).eval()
    processor = AutoProcessor.from_pretrained(job["processor_dir"], audio_tokenizer=codec)
    results = []
    for conversation in job["conversations"]:
        audio = []
        for message in conversation:
            for item in message["content"] if isinstance(message["content"], list) else []:
                if item["type"] == "audio":
                    wave, sr = sf.read(item["path"], dtype="float32")
                    assert sr == 24000, sr
                    audio.append(wave)
        text = processor.apply_chat_template(conversation, tokenize=False, add_generation_prompt=True)
        with torch.no_grad():
            inputs = processor(text=text, audio=audio or None, return_tensors="pt")
        results.append(
            {
                "text": text,
                "input_ids": inputs["input_ids"][0],
                "audio_input_ids": inputs.get("audio_input_ids"),
                "audio_input_ids_mask": inputs.get("audio_input_ids_mask"),
            }
        )
    return {"prompts": results}


def codec(job: dict) -> dict:
    from transformers import HiggsAudioV2TokenizerModel

    model = HiggsAudioV2TokenizerModel.from_pretrained(job["codec_dir"]).eval()
    with torch.no_grad():
        codes = model.encode(job["wave"][None, None, :], return_dict=True).audio_codes
        wave = model.decode(job["codes"][None], return_dict=True).audio_values
    return {"codes": codes[0], "wave": wave[0, 0]}


def meta(job: dict) -> dict:
    from transformers import HiggsAudioV2Config, HiggsAudioV2ForConditionalGeneration

    config = HiggsAudioV2Config(
        **{k: v for k, v in job["config"].items() if k not in ("architectures", "model_type", "dtype")}
    )
    with torch.device("meta"):
        model = HiggsAudioV2ForConditionalGeneration(config, use_text_head=True)
    return {"shapes": {k: tuple(v.shape) for k, v in model.state_dict().items()}}


JOBS = {"forward": forward, "generate": generate, "prompt": prompt, "codec": codec, "meta": meta}


def main(argv: list[str]) -> int:
    ensure_audio_tokenizer_importable_torchaudio_only()
    import transformers

    jobs = torch.load(argv[0], weights_only=True)
    results = []
    for job in jobs:
        try:
            result = JOBS[job["kind"]](job)
        except Exception as err:  # one failing job must not hide the others' results
            import traceback

            result = {"error": f"{type(err).__name__}: {err}", "traceback": traceback.format_exc()}
        result["transformers_version"] = transformers.__version__
        results.append(result)
    torch.save(results, argv[1])
    return 0


def ensure_audio_tokenizer_importable_torchaudio_only() -> None:
    """The native codec module imports torchaudio only to resample: the project's soxr stand-in serves it."""
    from higgs_lora.model import compat

    if not compat._importable("torchaudio"):
        compat._install_torchaudio()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
