#!/usr/bin/env bash
# Create the virtualenv (.venv, or $VENV): safemigrate (editable) plus the dependency groups named
# below; a no-op when nothing changed.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
VENV="${VENV:-.venv}"
if [ ! -x "$VENV/bin/python" ]; then
  echo "Creating a virtualenv in $VENV"
  "$PYTHON" -m venv "$VENV"
fi
# SAFEMIGRATE_EXTRAS: comma-separated names, each a dependency group of pyproject.toml (dev,
# fitnessdb) or an extra of the safemigrate distribution (mysql, s3, postgresql, tasks).
extras="${SAFEMIGRATE_EXTRAS:-dev}"
stamp="$VENV/.installed-$(cat pyproject.toml | sha256sum | cut -c1-16)-${extras//,/_}"
if [ ! -f "$stamp" ]; then
  groups=() wanted=()
  IFS=, read -ra names <<<"$extras"
  for name in "${names[@]}"; do
    case "$name" in
      dev | fitnessdb | bench) groups+=(--group "$name") ;;
      "") ;;
      *) wanted+=("$name") ;;
    esac
  done
  [ ${#groups[@]} -gt 0 ] || groups=(--group fitnessdb)
  spec="."
  if [ ${#wanted[@]} -gt 0 ]; then spec=".[$(IFS=,; echo "${wanted[*]}")]"; fi
  echo "Installing safemigrate (${spec}) and the project's dependencies (${extras})"
  "$VENV/bin/python" -m pip install --quiet --upgrade "pip>=25.1"  # 25.1 reads --group
  # The single distribution of older checkouts bundled both packages.
  "$VENV/bin/python" -m pip uninstall --quiet --yes fitnessdb >/dev/null 2>&1 || true
  "$VENV/bin/python" -m pip install --quiet -e "$spec" "${groups[@]}"
  rm -f "$VENV"/.installed-*
  touch "$stamp"
fi
