#!/usr/bin/env bash
# Write a local development .env (git-ignored) once, so every manage.py command typed later works.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -f .env ] && exit 0
PY="${PY:-.venv/bin/python}"
key="$("$PY" -c 'import secrets; print(secrets.token_urlsafe(50))')"
(umask 077 && printf 'DEBUG=1\nSECRET_KEY=%s\n' "$key" > .env)
echo "Wrote .env (DEBUG=1 and a generated SECRET_KEY, for local development only; it is git-ignored)."
echo "manage.py reads it, so '.venv/bin/python manage.py <command>' works from now on."
