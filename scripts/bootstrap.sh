#!/usr/bin/env bash
# Create .venv and install the project with its dev extras; a no-op when nothing changed.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  echo "Creating a virtualenv in .venv"
  "$PYTHON" -m venv .venv
fi
extras="${SAFEMIGRATE_EXTRAS:-dev}"
stamp=".venv/.installed-$(cat pyproject.toml | sha256sum | cut -c1-16)-${extras//,/_}"
if [ ! -f "$stamp" ]; then
  echo "Installing fitnessdb and its dependencies (.[${extras}])"
  .venv/bin/python -m pip install --quiet --upgrade pip
  .venv/bin/python -m pip install --quiet -e ".[${extras}]"
  rm -f .venv/.installed-*
  touch "$stamp"
fi
