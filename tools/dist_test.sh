#!/usr/bin/env bash
# Distributed testing with torchrun: tools/dist_test.sh CONFIG CHECKPOINT GPUS [PY_ARGS...]
# Environment: NNODES, NODE_RANK, MASTER_ADDR, PORT, PYTHON (seg101_mm/tools/dist_run.sh).
set -euo pipefail
if [ $# -lt 3 ]; then
    echo "usage: $0 CONFIG CHECKPOINT GPUS [PY_ARGS...]" >&2
    exit 2
fi
ROOT="$(dirname "$0")/.."
PYTHONPATH="$ROOT":${PYTHONPATH:-} \
    exec bash "$ROOT/seg101_mm/tools/dist_run.sh" seg101_mm.tools.test "$3" "$1" "$2" "${@:4}"
