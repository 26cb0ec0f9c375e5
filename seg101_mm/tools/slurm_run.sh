#!/usr/bin/env bash
# srun of one of the package's command lines: slurm_run.sh PARTITION JOB_NAME MODULE [ARGS...]
# runs `python -u -m MODULE ARGS --launcher=slurm` as a Slurm job step (e.g. MODULE
# seg101_mm.tools.train). Environment: GPUS (total tasks, default 4), GPUS_PER_NODE (default
# 4), CPUS_PER_TASK (default 5), SRUN_ARGS (extra srun options), PYTHON (default python).
# GPUS_PER_NODE=0 is a partition of CPU nodes: no GPU request and one task (GPUS=1) that runs
# without a process group (--launcher=none), since mmengine's slurm launcher needs CUDA.
set -euo pipefail

if [ $# -lt 3 ]; then
    echo "usage: $0 PARTITION JOB_NAME MODULE [ARGS...]" >&2
    exit 2
fi

PARTITION=$1
JOB_NAME=$2
MODULE=$3
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
exec srun -p "$PARTITION" \
    --job-name="$JOB_NAME" \
    "${RESOURCES[@]}" \
    --cpus-per-task="$CPUS_PER_TASK" \
    --kill-on-bad-exit=1 \
    ${SRUN_ARGS} \
    "$PYTHON" -u -m "$MODULE" "${@:4}" --launcher="$LAUNCHER"
