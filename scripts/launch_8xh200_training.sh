#!/usr/bin/env bash
# Launch LoRA training on one node with torchrun (default: 8 GPUs, the design's 8xH200 setup).
#
#   bash scripts/launch_8xh200_training.sh --train_data data/chatml_samples.json \
#        --output_dir checkpoints/voice_cloning --num_epochs 3
#
# Any flag of trainer/train.py may be given; later flags override the defaults below.
# NPROC (GPUs, default 8), MASTER_PORT (default 29500) and OMP_NUM_THREADS can be set in the environment.
set -euo pipefail
cd "$(dirname "$0")/.."

NPROC="${NPROC:-8}"
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-16}"          # 128 cores / 8 processes
export PYTORCH_CUDA_ALLOC_CONF="${PYTORCH_CUDA_ALLOC_CONF:-expandable_segments:True}"
export TOKENIZERS_PARALLELISM=false

PY="${PYTHON:-python}"
[[ -x .venv/bin/python && -z "${PYTHON:-}" ]] && PY=.venv/bin/python

# Effective batch = 4 per GPU x 4 accumulation x 8 GPUs = 128 (the design's numbers).
exec "$PY" -m torch.distributed.run \
    --nproc_per_node="$NPROC" --nnodes=1 --node_rank=0 \
    --master_addr=localhost --master_port="${MASTER_PORT:-29500}" \
    trainer/train.py \
    --batch_size 4 --gradient_accumulation_steps 4 --learning_rate 5e-4 \
    --lora_r 64 --lora_alpha 128 --dataloader_num_workers 4 \
    "$@"
