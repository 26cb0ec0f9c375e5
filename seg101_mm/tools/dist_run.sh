#!/usr/bin/env bash
# torchrun of one of the package's command lines: dist_run.sh MODULE GPUS [ARGS...]
# runs `python -m MODULE ARGS --launcher pytorch` in GPUS processes per node (e.g. MODULE
# seg101_mm.tools.train). Without CUDA each process runs on the CPU with the gloo backend.
# Multi-node: set NNODES, NODE_RANK, MASTER_ADDR, PORT; PYTHON is the interpreter.
set -euo pipefail

if [ $# -lt 2 ]; then
    echo "usage: $0 MODULE GPUS [ARGS...]" >&2
    exit 2
fi

MODULE=$1
GPUS=$2
NNODES=${NNODES:-1}
NODE_RANK=${NODE_RANK:-0}
PORT=${PORT:-29500}
MASTER_ADDR=${MASTER_ADDR:-"127.0.0.1"}
PYTHON=${PYTHON:-python}

exec "$PYTHON" -m torch.distributed.run \
    --nnodes="$NNODES" \
    --node_rank="$NODE_RANK" \
    --master_addr="$MASTER_ADDR" \
    --nproc_per_node="$GPUS" \
    --master_port="$PORT" \
    -m "$MODULE" "${@:3}" --launcher pytorch
