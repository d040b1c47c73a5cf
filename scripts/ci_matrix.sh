#!/usr/bin/env bash
# The supported Django versions, each with the Python it needs: build the wheel, install it in a
# fresh virtualenv with that Django, and run safemigrate's SQLite tests with the minimal settings
# (tests/safemigrate_settings.py: no fitnessdb). The tests run from a copy of tests/, so they import
# the installed wheel, not this checkout. Usage: bash scripts/ci_matrix.sh [DJANGO_SERIES ...]
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/ci_lib.sh
export PIP_DISABLE_PIP_VERSION_CHECK=1
unset SAFEMIGRATE_REQUIRE_SERVICES  # SQLite only: the server tests belong to the main run

# Django series : Python : extras. The 6.1 run has no extras: the app without django-q2.
MATRIX=("5.2:3.11:tasks" "6.0:3.12:tasks" "6.1:3.13:")
wanted=("$@")
work="${SAFEMIGRATE_MATRIX_DIR:-$(mktemp -d /tmp/safemigrate-matrix.XXXXXX)}"
wheel="$(build_wheel "$work/dist")"
echo "matrix: wheel $(basename "$wheel")"

# The app's tests, without the project: settings, the test apps and tests/safemigrate.
src="$work/src"
rm -rf "$src" && mkdir -p "$src/tests"
cp pyproject.toml README.md CHANGELOG.md "$src/"
cp tests/__init__.py tests/conftest.py tests/safemigrate_settings.py tests/safemigrate_urls.py "$src/tests/"
cp -r tests/migrapp tests/migrateoverride tests/othersafemigrate tests/safemigrate "$src/tests/"

# The subset: everything in tests/safemigrate that needs neither fitnessdb's models and settings
# (JSON dumps of its data, its broker settings, the worker and browser tests, the fault tests that
# run its manage.py in subprocesses) nor a server or moto. scripts/ci_wheel_smoke.sh runs a failing
# migration in a new project with the newest Django instead.
ignore=(
  --ignore tests/safemigrate/test_faults.py
  --ignore tests/safemigrate/jsondump
  --ignore tests/safemigrate/tasks/test_broker_settings.py
  --ignore tests/safemigrate/tasks/test_cluster.py
  --ignore tests/safemigrate/admin/test_browser.py
  --ignore tests/safemigrate/offsite/test_s3.py
  --ignore tests/safemigrate/vendors/test_adapters.py
  --ignore tests/safemigrate/vendors/test_safety_matrix.py
  # These drive fitnessdb's manage.py in subprocesses, its URLs, or read the repository's README.
  --ignore tests/safemigrate/test_rollback.py
  --ignore tests/safemigrate/test_django_compat.py
  --ignore tests/safemigrate/test_leftovers.py
  --ignore tests/safemigrate/test_test_databases.py
  --ignore tests/safemigrate/test_middleware.py
  --ignore tests/safemigrate/test_monitor_checks.py
  --ignore tests/safemigrate/admin/test_health_endpoint.py
  --deselect tests/safemigrate/test_untrusted_files.py::test_lock__a_symlink_planted_as_the_lock_file_is_not_followed
)

status=0
for entry in "${MATRIX[@]}"; do
  IFS=: read -r django python extras <<<"$entry"
  if [ ${#wanted[@]} -gt 0 ] && [[ ! " ${wanted[*]} " =~ " $django " ]]; then continue; fi
  started=$SECONDS
  venv="$work/venv-django$django"
  rm -rf "$venv"
  "$(find_python "$python")" -m venv "$venv"
  spec="$wheel"
  [ -n "$extras" ] && spec="safemigrate[$extras] @ file://$wheel"
  "$venv/bin/python" -m pip install --quiet "$spec" "Django~=$django.0" \
    "pytest>=8,<10" "pytest-django>=4.8,<5" "pytest-timeout>=2.3,<3"
  echo "matrix: Django $("$venv/bin/python" -m django --version) on Python $python," \
    "extras: ${extras:-none}; safemigrate from" \
    "$(cd "$src" && "$venv/bin/python" -c 'import safemigrate, pathlib; print(pathlib.Path(safemigrate.__file__).parent)')"
  # Without the tasks extra, the tests that read django-q2's task table cannot import it.
  without_q=()
  [ -n "$extras" ] || without_q=(--ignore tests/safemigrate/notify/test_notify.py
    --ignore tests/safemigrate/offsite/test_followup.py)
  if (cd "$src" && "$venv/bin/python" -m pytest -q -p no:cacheprovider --ds tests.safemigrate_settings \
    tests/safemigrate "${ignore[@]}" "${without_q[@]}" -m "not services and not browser"); then
    echo "matrix: Django $django / Python $python passed in $((SECONDS - started))s"
  else
    echo "matrix: Django $django / Python $python FAILED" >&2
    status=1
  fi
done
exit $status
