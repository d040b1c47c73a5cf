#!/usr/bin/env bash
# Create the virtualenv (.venv, or $VENV) and install the project with its dev extras; a no-op when
# nothing changed.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
VENV="${VENV:-.venv}"
if [ ! -x "$VENV/bin/python" ]; then
  echo "Creating a virtualenv in $VENV"
  "$PYTHON" -m venv "$VENV"
fi
extras="${SAFEMIGRATE_EXTRAS:-dev}"
stamp="$VENV/.installed-$(cat pyproject.toml | sha256sum | cut -c1-16)-${extras//,/_}"
if [ ! -f "$stamp" ]; then
  echo "Installing fitnessdb and its dependencies (.[${extras}])"
  "$VENV/bin/python" -m pip install --quiet --upgrade pip
  "$VENV/bin/python" -m pip install --quiet -e ".[${extras}]"
  rm -f "$VENV"/.installed-*
  touch "$stamp"
fi
