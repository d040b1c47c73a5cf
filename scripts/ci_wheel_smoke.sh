#!/usr/bin/env bash
# The wheel in a brand-new project: build it, install it into a fresh virtualenv, `django-admin
# startproject`, add the app and a migration that fails half-way, and check that the guarded
# `migrate` exits 1 and leaves the database exactly as it was.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/ci_lib.sh
export PIP_DISABLE_PIP_VERSION_CHECK=1
work="${SAFEMIGRATE_SMOKE_DIR:-$(mktemp -d /tmp/safemigrate-smoke.XXXXXX)}"
wheel="$(build_wheel "$work/dist")"
python="$(find_python "${SMOKE_PYTHON:-3.12}")"

rm -rf "$work/venv" "$work/site"
"$python" -m venv "$work/venv"
"$work/venv/bin/python" -m pip install --quiet "$wheel"
echo "smoke: installed $(basename "$wheel") with Django $("$work/venv/bin/python" -m django --version)"
mkdir -p "$work/site" && cd "$work/site"
export PATH="$work/venv/bin:$PATH"
django-admin startproject mysite .
python manage.py startapp shop
cat >>mysite/settings.py <<'PY'

INSTALLED_APPS = ["safemigrate", *INSTALLED_APPS, "shop"]
SAFEMIGRATE_BACKUP_DIR = BASE_DIR / "backups"
PY
cat >shop/models.py <<'PY'
from django.db import models


class Item(models.Model):
    name = models.CharField(max_length=100)
PY
python manage.py makemigrations shop -v 0
python manage.py migrate -v 0
python manage.py shell -c "from shop.models import Item; Item.objects.bulk_create(Item(name=f'item {n}') for n in range(100))"

# 0002 adds a column, rewrites every row, then fails: all of it must be undone.
cat >shop/migrations/0002_fails.py <<'PY'
from django.db import migrations, models


def rename_then_fail(apps, schema_editor):
    apps.get_model("shop", "Item").objects.update(name="lost", note="half-way")
    raise RuntimeError("this migration fails on purpose")


class Migration(migrations.Migration):
    dependencies = [("shop", "0001_initial")]
    operations = [
        migrations.AddField("item", "note", models.CharField(max_length=20, default="")),
        migrations.RunPython(rename_then_fail),
    ]
PY

# The state that matters: schema, rows and applied migrations of the project's own tables.
snapshot() {
  python - <<'PY'
import hashlib, sqlite3
db = sqlite3.connect("db.sqlite3")
parts = [repr(db.execute("SELECT sql FROM sqlite_master WHERE name NOT LIKE 'safemigrate%' ORDER BY name").fetchall())]
parts.append(repr(db.execute("SELECT * FROM shop_item ORDER BY id").fetchall()))
parts.append(repr(db.execute("SELECT app, name FROM django_migrations ORDER BY id").fetchall()))
print(hashlib.sha256("\n".join(parts).encode()).hexdigest())
PY
}
before="$(snapshot)"
set +e
python manage.py migrate --noinput >"$work/migrate.out" 2>&1
code=$?
set -e
cat "$work/migrate.out"
after="$(snapshot)"
if [ "$code" -ne 1 ]; then
  echo "smoke: FAILED: migrate exited $code, expected 1" >&2
  exit 1
fi
if [ "$before" != "$after" ]; then
  echo "smoke: FAILED: the database changed ($before -> $after)" >&2
  exit 1
fi
if ! ls backups/backup-pre_migrate-*.manifest.json >/dev/null 2>&1; then
  echo "smoke: FAILED: no pre-migration backup in $work/site/backups" >&2
  exit 1
fi
python manage.py check --fail-level ERROR >/dev/null
echo "smoke: guarded migrate exited 1 and rolled back; the database is unchanged (sha256 $after)"
