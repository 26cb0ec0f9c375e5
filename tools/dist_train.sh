#!/usr/bin/env bash
# Distributed training with torchrun: tools/dist_train.sh CONFIG GPUS [PY_ARGS...]
# GPUS is the number of processes per node; without CUDA each runs on the CPU with gloo.
# Environment: NNODES, NODE_RANK, MASTER_ADDR, PORT, PYTHON (seg101_mm/tools/dist_run.sh).
set -euo pipefail
if [ $# -lt 2 ]; then
    echo "usage: $0 CONFIG GPUS [PY_ARGS...]" >&2
    exit 2
fi
ROOT="$(dirname "$0")/.."
PYTHONPATH="$ROOT":${PYTHONPATH:-} \
    exec bash "$ROOT/seg101_mm/tools/dist_run.sh" seg101_mm.tools.train "$2" "$1" "${@:3}"
