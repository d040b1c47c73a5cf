#!/usr/bin/env bash
# Install everything and run the whole test suite (extra arguments go to pytest).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
exec "${VENV:-.venv}/bin/python" -m pytest "$@"
