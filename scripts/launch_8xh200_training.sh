#!/usr/bin/env bash
# Launch LoRA training with torchrun: the design's 8xH200 node by default, several nodes when asked.
#
#   bash scripts/launch_8xh200_training.sh --train_data data/chatml_samples.json \
#        --output_dir checkpoints/voice_cloning --num_epochs 3
#
# Every flag of `higgs-lora train` (trainer/train.py) may be given; later flags override the defaults
# below (e.g. --batch_size 2). `--help` prints those flags once, without starting torchrun.
#
# Environment (defaults in brackets):
#   NPROC [8]  processes (GPUs) on this node      NNODES [1]  nodes      NODE_RANK [0]  this node's index
#   MASTER_ADDR [localhost]  MASTER_PORT [29500]  address of node 0, the same on every node
#   CUDA_VISIBLE_DEVICES [0..NPROC-1]  OMP_NUM_THREADS [16]  NCCL_IB_DISABLE [0]  NCCL_DEBUG [WARN]
#   PYTORCH_CUDA_ALLOC_CONF [max_split_size_mb:512]
#   CHECKPOINTING [unset]: auto|on|off, passed as --use_gradient_checkpointing; unset, train's default (auto)
#   lets the memory check turn activation checkpointing on only where the longest batch needs it
#   PYTHON [.venv/bin/python if present, else python]
# Two nodes: run the same command on both, with NNODES=2, NODE_RANK=0 or 1 and MASTER_ADDR=<node 0>.
set -euo pipefail
cd "$(dirname "$0")/.."

PY="${PYTHON:-python}"
[[ -x .venv/bin/python && -z "${PYTHON:-}" ]] && PY=.venv/bin/python

for arg in "$@"; do
    if [[ "$arg" == "-h" || "$arg" == "--help" ]]; then
        awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"   # the header above
        echo
        exec "$PY" trainer/train.py --help   # one process: no torchrun, no GPUs touched
    fi
done

NPROC="${NPROC:-8}"
NNODES="${NNODES:-1}"
NODE_RANK="${NODE_RANK:-0}"
MASTER_ADDR="${MASTER_ADDR:-localhost}"
MASTER_PORT="${MASTER_PORT:-29500}"

# The design's environment; anything already set by the caller wins.
export CUDA_VISIBLE_DEVICES="${CUDA_VISIBLE_DEVICES:-$(seq -s, 0 $((NPROC - 1)))}"
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-16}"          # 128 cores / 8 processes
export NCCL_IB_DISABLE="${NCCL_IB_DISABLE:-0}"           # InfiniBand on (it matters across nodes)
export NCCL_DEBUG="${NCCL_DEBUG:-WARN}"
export TORCH_NCCL_ASYNC_ERROR_HANDLING="${TORCH_NCCL_ASYNC_ERROR_HANDLING:-1}"  # a dead rank ends the job, no silent hang
export PYTORCH_CUDA_ALLOC_CONF="${PYTORCH_CUDA_ALLOC_CONF:-max_split_size_mb:512}"
export TOKENIZERS_PARALLELISM=false

# The design's flags (effective batch 4 x 4 x 8 = 128 on one node); "$@" comes last and overrides them.
# The design's bare --mixed_precision means bf16; `auto` is bf16 on every GPU that has it (fp16 on older
# ones) and fp32 on a CPU test run, where bf16 would only be emulated.
# Data-loader workers: 2 per rank, not the design's 16. A worker's whole job per batch is reading 4
# samples' codes from the on-disk code cache (a few KB each, pre-tokenized prompts) and running the
# collator: milliseconds of CPU against a ~0.5 s GPU step, so 2 keep batches waiting. 16 x 8 ranks =
# 128 processes, each holding a copy of the data set's lists, cost memory and start-up time for nothing.
# Activation checkpointing is not forced (about 1.5x slower per step): batch 4 fits an H200 without it,
# and train's memory check turns it on where the longest batch needs it.
DEFAULTS=(--batch_size 4 --gradient_accumulation_steps 4 --learning_rate 5e-4
          --lora_r 64 --lora_alpha 128 --dataloader_num_workers 2 --mixed_precision auto)
# Earlier versions of this script read CHECKPOINTING=1 (force on) / 0 (leave it to train): still honoured.
case "${CHECKPOINTING:-}" in
  1) CHECKPOINTING=on ;;
  0) CHECKPOINTING=auto ;;
esac
[[ -n "${CHECKPOINTING:-}" ]] && DEFAULTS+=(--use_gradient_checkpointing "$CHECKPOINTING")

# The effective batch as train will see it: the last value of each flag wins, as argparse does.
value_of() {
    local name="$1" value="$2"; shift 2
    while (($#)); do
        case "$1" in
            "$name") value="${2:-$value}"; shift ;;
            "$name"=*) value="${1#*=}" ;;
        esac
        shift
    done
    echo "$value"
}
BATCH=$(value_of --batch_size 4 "${DEFAULTS[@]}" "$@")
ACCUM=$(value_of --gradient_accumulation_steps 4 "${DEFAULTS[@]}" "$@")
TOKENS=$(value_of --max_tokens_per_batch 0 "${DEFAULTS[@]}" "$@")
WHERE="(node ${NODE_RANK}, master ${MASTER_ADDR}:${MASTER_PORT})"
if [[ "$TOKENS" =~ ^[0-9]+$ ]] && ((TOKENS > 0)); then   # length-aware batches: --batch_size is ignored
    echo "launch: effective batch = up to ${TOKENS} padded tokens per device x ${ACCUM} accumulation x ${NPROC}" \
         "processes x ${NNODES} nodes per optimizer step (--max_tokens_per_batch; --batch_size ignored) ${WHERE}"
else
    echo "launch: effective batch = ${BATCH} per device x ${ACCUM} accumulation x ${NPROC} processes x ${NNODES} nodes" \
         "= $((BATCH * ACCUM * NPROC * NNODES)) samples per optimizer step ${WHERE}"
fi

exec "$PY" -m torch.distributed.run \
    --nproc_per_node="$NPROC" --nnodes="$NNODES" --node_rank="$NODE_RANK" \
    --master_addr="$MASTER_ADDR" --master_port="$MASTER_PORT" \
    trainer/train.py "${DEFAULTS[@]}" "$@"
