#!/usr/bin/env bash
# Install everything, migrate safely, load demo data, and serve the app at http://127.0.0.1:8000
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
PY=.venv/bin/python
export DEBUG="${DEBUG:-1}"
bash scripts/dev_env.sh
$PY manage.py migrate --noinput
# Demo data only into an empty database, never over a user's edits (SEED_DEMO=1 refreshes it).
if [ "${SEED_DEMO:-0}" = 1 ]; then $PY manage.py seed_demo; else $PY manage.py seed_demo --if-empty; fi
username="${DJANGO_SUPERUSER_USERNAME:-admin}"
if ! $PY manage.py shell --no-imports -c "from django.contrib.auth import get_user_model as g; import sys; sys.exit(0 if g().objects.filter(is_superuser=True).exists() else 1)" 2>/dev/null; then
  password="${DJANGO_SUPERUSER_PASSWORD:-$($PY -c 'import secrets; print(secrets.token_urlsafe(12))')}"
  DJANGO_SUPERUSER_PASSWORD="$password" $PY manage.py createsuperuser --noinput \
    --username "$username" --email "${DJANGO_SUPERUSER_EMAIL:-admin@example.com}"
  echo
  echo "  Superuser created. Log in at http://${BIND:-127.0.0.1:8000}/admin/ as: $username / $password"
  echo "  (shown once; change it with: .venv/bin/python manage.py changepassword $username)"
  echo
fi
exec $PY manage.py runserver "${BIND:-127.0.0.1:8000}"
