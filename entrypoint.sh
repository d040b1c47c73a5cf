#!/bin/sh
# Container entrypoint: wait for the database, migrate safely, then become the command ("$@").
#
#   1. wait until the database accepts connections (DB_WAIT_TIMEOUT seconds, default 60);
#   2. python manage.py safemigrate --noinput: lock -> plan -> integrity check -> verified backup
#      -> migrate -> post-check -> automatic restore on failure. Several containers may start at
#      once: the lock lets one migrate while the others wait, then find nothing left to do.
#      A refused or rolled-back migration stops here with a non-zero exit, so the container never
#      serves a half-migrated database. It exits after MIGRATE_FAILURE_DELAY seconds (default
#      300), so a restart policy does not take a new backup every few seconds.
#      SKIP_MIGRATE=1 (e.g. the worker) skips this step and waits until another container has
#      migrated (MIGRATE_WAIT_TIMEOUT seconds, default 600);
#   3. exec "$@": the command replaces this shell as PID 1 and receives the signals itself.
set -eu

app_dir=$(CDPATH='' cd -- "$(dirname -- "$0")" && pwd)
python=${PYTHON:-python}
db_wait_timeout=${DB_WAIT_TIMEOUT:-60}
skip_migrate=${SKIP_MIGRATE:-0}
migrate_wait_timeout=${MIGRATE_WAIT_TIMEOUT:-600}
failure_delay=${MIGRATE_FAILURE_DELAY:-300}
stopping=0

say() {
    printf 'entrypoint: %s\n' "$*" >&2
}

# Run a command in the background and pass SIGTERM/SIGINT on to it: while this shell is PID 1 it
# would otherwise ignore `docker stop`, and a migration must see the signal to roll back cleanly.
run() {
    "$@" &
    child=$!
    trap 'stopping=1; kill -TERM "$child" 2>/dev/null || true' TERM INT
    rc=0
    wait "$child" || rc=$?
    # A trapped signal interrupts `wait` (exit > 128) while the child still runs: wait again.
    while [ "$rc" -gt 128 ] && kill -0 "$child" 2>/dev/null; do
        rc=0
        wait "$child" || rc=$?
    done
    trap - TERM INT
    return "$rc"
}

if [ "$#" -eq 0 ]; then
    say "no command given; usage: entrypoint.sh COMMAND [ARG...] (e.g. gunicorn fitnessdb.wsgi)"
    exit 64
fi

# A SQLite file's folder must exist (a fresh bind mount has no db/ folder).
case "${DATABASE_URL:-}" in
    sqlite:////*)
        sqlite_path=${DATABASE_URL#sqlite://}
        mkdir -p -- "$(dirname -- "$sqlite_path")"
        ;;
esac

status=0
run "$python" "$app_dir/manage.py" waitfordb --timeout "$db_wait_timeout" || status=$?
if [ "$status" -ne 0 ]; then
    say "the database is not reachable (see above); not starting: $*"
    say "check DATABASE_URL and that the database server is running, or raise DB_WAIT_TIMEOUT"
    exit "$status"
fi

if [ "$skip_migrate" = "1" ]; then
    say "SKIP_MIGRATE=1: not migrating; waiting until another container has migrated"
    run "$python" "$app_dir/manage.py" waitfordb --migrated --timeout "$migrate_wait_timeout" \
        || status=$?
    if [ "$status" -ne 0 ]; then
        say "the database is not migrated (see above); not starting: $*"
        say "the container that migrates (web) has not finished or has failed: see its logs"
        exit "$status"
    fi
else
    run "$python" "$app_dir/manage.py" safemigrate --noinput || status=$?
    if [ "$status" -ne 0 ]; then
        say "safemigrate failed (exit $status): the migration was refused or rolled back (the" \
            "line above says which, and why). Not starting: $*"
        say "backups: python manage.py backups; fix the migration, then start the container again"
        # Each attempt takes a full pre-migration backup: a restart loop must not fill the disk.
        if [ "$failure_delay" -gt 0 ] && [ "$stopping" -eq 0 ]; then
            say "exiting in ${failure_delay}s (MIGRATE_FAILURE_DELAY), so a restart policy does" \
                "not retry at once; docker compose stop web worker stops here"
            run sleep "$failure_delay" || true
        fi
        exit "$status"
    fi
fi

say "database ready; starting: $*"
exec "$@"
