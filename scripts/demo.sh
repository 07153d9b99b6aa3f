#!/usr/bin/env bash
# The whole pipeline offline on the tiny random-weight model and the tiny codec:
# create-sample-data -> validate -> train -> merge -> infer -> check-alignment.
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

step "3/6 train: LoRA on the tiny model (python trainer/train.py takes the same flags)"
"$HL" train --train_data "$OUT/data.json" --output_dir "$OUT/lora" \
    --base_model tiny --audio_tokenizer tiny \
    --batch_size 2 --gradient_accumulation_steps 1 --max_steps 20 --logging_steps 5 \
    --learning_rate 1e-3 --lora_r 8 --lora_alpha 16 --dataloader_num_workers 0 --report_to tensorboard
tail -n 1 "$OUT/lora/metrics.jsonl"

step "4/6 merge the adapter into the base model"
"$HL" merge --base_model tiny --lora_path "$OUT/lora" --output_path "$OUT/merged"

step "5/6 infer: clone each sample's voice through the same prompt builder"
"$HL" validate --for_inference "$OUT/data.json" >/dev/null
"$HL" infer --chatml_file "$OUT/data.json" --output_dir "$OUT/audio" --model_path "$OUT/merged" \
    --audio_tokenizer tiny --max_new_tokens 60 --temperature 0.7 --seed 0

step "eval: fine-tuned vs base model: SIM, WER (English samples), duration, EOS; report.md + plots"
"$HL" eval --data "$OUT/data.json" --model_path "$OUT/merged" --audio_tokenizer tiny \
    --output_dir "$OUT/eval" --max_samples 6 --seed 0

step "6/6 check-alignment: prompt parity, label audit, overfit-and-regenerate"
"$HL" check-alignment --train_data "$OUT/data.json" --base_model tiny --audio_tokenizer tiny \
    --max_samples 6 --report "$OUT/alignment_report.json"

printf '\nDemo finished: outputs in %s/ (lora/, merged/, audio/*.wav, alignment_report.json)\n' "$OUT"
