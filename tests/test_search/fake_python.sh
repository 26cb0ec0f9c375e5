#!/usr/bin/env bash
# A stand-in interpreter for the Slurm tests: "fake_python.sh -u .../tools/train.py ARGS" (what
# tools/slurm_train.sh and the sbatch jobs run) runs the fake trainer with ARGS; any other call
# (submitit's job runner) goes to the real interpreter, $FAKE_REAL_PYTHON.
if [ "${1:-}" = -u ] && [[ "${2:-}" == */tools/train.py ]]; then
    exec "$FAKE_REAL_PYTHON" "$(dirname "$0")/fake_train.py" "${@:3}"
fi
exec "$FAKE_REAL_PYTHON" "$@"
