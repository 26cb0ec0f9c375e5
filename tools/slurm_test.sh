#!/usr/bin/env bash
# Testing on a Slurm cluster: tools/slurm_test.sh PARTITION JOB_NAME CONFIG CHECKPOINT [PY_ARGS...]
# Environment: GPUS (total tasks, default 4), GPUS_PER_NODE (default 4; 0: CPU nodes, one task),
# CPUS_PER_TASK (default 5), SRUN_ARGS, PYTHON (seg101_mm/tools/slurm_run.sh).
set -euo pipefail
if [ $# -lt 4 ]; then
    echo "usage: $0 PARTITION JOB_NAME CONFIG CHECKPOINT [PY_ARGS...]" >&2
    exit 2
fi
ROOT="$(dirname "$0")/.."
PYTHONPATH="$ROOT":${PYTHONPATH:-} \
    exec bash "$ROOT/seg101_mm/tools/slurm_run.sh" "$1" "$2" seg101_mm.tools.test "$3" "$4" \
    "${@:5}"
