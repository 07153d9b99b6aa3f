#!/usr/bin/env bash
# The whole pipeline offline on the tiny random-weight model and the tiny codec:
# create-sample-data -> validate -> tokenize -> train -> merge -> infer -> check-alignment.
# It proves the plumbing and the alignment, not voice quality (the tiny model is random).
set -euo pipefail
cd "$(dirname "$0")/.."
HL="${HIGGS_LORA:-.venv/bin/higgs-lora}"
OUT="${DEMO_OUT:-demo_output}"
rm -rf "$OUT"
mkdir -p "$OUT"

step() { printf '\n=== %s\n' "$*"; }

step "1/6 create-sample-data: real (espeak-ng) speech, canonical five-message ChatML"
"$HL" create-sample-data "$OUT/data.json"

step "2/6 validate"
"$HL" validate "$OUT/data.json"

step "3/6 tokenize: each audio file encoded once into the on-disk code cache, then train from it"
"$HL" tokenize "$OUT/data.json" --audio_tokenizer tiny --cache_dir "$OUT/codes"
# LoRA on the tiny model (python trainer/train.py takes the same flags); --require_cache: no encoding here
"$HL" train --train_data "$OUT/data.json" --output_dir "$OUT/lora" \
    --base_model tiny --audio_tokenizer tiny --cache_dir "$OUT/codes" --require_cache \
    --max_tokens_per_batch 800 \
    --batch_size 2 --gradient_accumulation_steps 1 --max_steps 20 --logging_steps 5 \
    --learning_rate 1e-3 --lora_r 8 --lora_alpha 16 --dataloader_num_workers 0 --report_to tensorboard
tail -n 1 "$OUT/lora/metrics.jsonl"

step "4/6 merge the adapter into the base model (base model and codec read back from the run's settings)"
"$HL" merge --lora_path "$OUT/lora" --output_path "$OUT/merged" --dtype fp32

step "5/6 infer: clone each sample's voice through the same prompt builder"
"$HL" validate --for_inference "$OUT/data.json" >/dev/null
"$HL" infer --chatml_file "$OUT/data.json" --output_dir "$OUT/audio" --model_path "$OUT/merged" \
    --cache_dir "$OUT/codes" --max_new_tokens 60 --temperature 0.7 --seed 0
# one sentence from the command line, base model + unmerged adapter (codec and prompt from the run)
"$HL" clone --lora_path "$OUT/lora" --ref_audio "$OUT/data_audio/spk1_01.wav" --ref_text "مَرْحَبًا، كَيْفَ حَالُكَ؟" \
    --text "مرحبا، هذا صوت مستنسخ." --output "$OUT/audio/clone.wav" --max_new_tokens 60 --seed 0

step "eval: fine-tuned vs base model: SIM, WER (English samples), duration, EOS; report.md + plots"
"$HL" eval --data "$OUT/data.json" --model_path "$OUT/merged" --audio_tokenizer tiny \
    --output_dir "$OUT/eval" --max_samples 6 --seed 0 --asr pocketsphinx  # offline: auto would fetch Whisper for Arabic

step "6/6 check-alignment: prompt parity, label audit, overfit-and-regenerate"
"$HL" check-alignment --train_data "$OUT/data.json" --base_model tiny --audio_tokenizer tiny \
    --max_samples 6 --report "$OUT/alignment_report.json"

printf "\nDemo finished: outputs in %s/ (lora/, merged/, audio/*.wav, eval/report.md, alignment_report.json)\n" "$OUT"
