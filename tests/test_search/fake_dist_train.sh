#!/usr/bin/env bash
# Same CLI as tools/dist_train.sh (CONFIG GPUS [ARGS]); runs the fake trainer instead.
exec "${PYTHON:-python}" "$(dirname "$0")/fake_train.py" "$1" "${@:3}"
