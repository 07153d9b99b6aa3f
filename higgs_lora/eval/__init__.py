"""Evaluation of cloned voices: speaker similarity, intelligibility, stopping, duration, signal checks.

    text_norm.py   per-language normalisation of transcripts before WER/CER
    asr.py         pluggable ASR (auto by language: pocketsphinx for English, Whisper via transformers), WER/CER (jiwer)
    speaker.py     pluggable speaker encoders (Resemblyzer by default, WavLM x-vector), cosine SIM
    signal.py      duration, leading/trailing silence, clipping
    metrics.py     THE scoring of one clip: baseline, fine-tuned and ground truth all go through it
    report.py      results.csv, summary.json, report.md and PNG plots
    run.py         the `higgs-lora eval` flow: generate with both models, score, report
    callback.py    samples + metrics during training (TensorBoard, metrics.jsonl)

Nothing here imports torch, numpy or a scorer at module level except where the module's job needs it.
"""
