#!/usr/bin/env bash
# A stand-in interpreter for the Slurm tests: "fake_python.sh -u -m seg101_mm.tools.train ARGS"
# (what the package's srun script and the sbatch jobs run) runs the fake trainer with ARGS; any
# other call (submitit's job runner) goes to the real interpreter, $FAKE_REAL_PYTHON.
if [ "${1:-}" = -u ] && [ "${2:-}" = -m ] && [ "${3:-}" = seg101_mm.tools.train ]; then
    exec "$FAKE_REAL_PYTHON" "$(dirname "$0")/fake_train.py" "${@:4}"
fi
exec "$FAKE_REAL_PYTHON" "$@"
