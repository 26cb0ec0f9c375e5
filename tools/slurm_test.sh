#!/usr/bin/env bash
# Testing on a Slurm cluster: tools/slurm_test.sh PARTITION JOB_NAME CONFIG CHECKPOINT [PY_ARGS...]
# Environment: GPUS (total tasks, default 4), GPUS_PER_NODE (default 4), CPUS_PER_TASK
# (default 5), SRUN_ARGS (extra srun options), PYTHON (interpreter, default python).
# GPUS_PER_NODE=0 is a partition of CPU nodes: no GPU request and one task (GPUS=1) that runs
# without a process group (--launcher=none), since mmengine's slurm launcher needs CUDA.
set -euo pipefail

if [ $# -lt 4 ]; then
    echo "usage: $0 PARTITION JOB_NAME CONFIG CHECKPOINT [PY_ARGS...]" >&2
    exit 2
fi

PARTITION=$1
JOB_NAME=$2
CONFIG=$3
CHECKPOINT=$4
GPUS=${GPUS:-4}
GPUS_PER_NODE=${GPUS_PER_NODE:-4}
CPUS_PER_TASK=${CPUS_PER_TASK:-5}
SRUN_ARGS=${SRUN_ARGS:-""}
PYTHON=${PYTHON:-python}

if [ "$GPUS_PER_NODE" -eq 0 ]; then
    if [ "$GPUS" -ne 1 ]; then
        echo "error: GPUS_PER_NODE=0 (CPU nodes) runs one task; got GPUS=$GPUS, expected 1" >&2
        exit 2
    fi
    RESOURCES=(--ntasks=1)
    LAUNCHER=none
else
    RESOURCES=(--gres=gpu:"$GPUS_PER_NODE" --ntasks="$GPUS" --ntasks-per-node="$GPUS_PER_NODE")
    LAUNCHER=slurm
fi

# SRUN_ARGS is split on white space on purpose: it holds several srun options.
# shellcheck disable=SC2086
PYTHONPATH="$(dirname "$0")/..":${PYTHONPATH:-} \
srun -p "$PARTITION" \
    --job-name="$JOB_NAME" \
    "${RESOURCES[@]}" \
    --cpus-per-task="$CPUS_PER_TASK" \
    --kill-on-bad-exit=1 \
    ${SRUN_ARGS} \
    "$PYTHON" -u "$(dirname "$0")/test.py" "$CONFIG" "$CHECKPOINT" \
    --launcher="$LAUNCHER" "${@:5}"
