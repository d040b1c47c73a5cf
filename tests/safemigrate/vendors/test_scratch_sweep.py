"""Scratch databases of killed runs are dropped; a running verification's is never (issue 12 item 9)."""

from __future__ import annotations

import subprocess
import sys
import time

from safemigrate.vendors.server import _base36, _host_tag
from tests.safemigrate.vendors.servers import HOST, LiveDB, adapter_for

HOLDER = """
import sys, time
from safemigrate.vendors.server import scratch_name
engine, live, port, user = sys.argv[1:5]
if engine == "postgresql":
    import psycopg
    name = scratch_name(live, limit=63)
    with psycopg.connect(host="{host}", port=int(port), user=user, dbname="postgres", autocommit=True) as c:
        c.execute('CREATE DATABASE "%s"' % name)
else:
    import MySQLdb
    name = scratch_name(live, limit=64)
    c = MySQLdb.connect(host="{host}", port=int(port), user=user)
    c.cursor().execute("CREATE DATABASE `%s`" % name)
    c.close()
print(name, flush=True)
time.sleep(600)
""".replace("{host}", HOST)


def dead_pid() -> int:
    child = subprocess.Popen(["true"])  # noqa: S607
    child.wait()
    return child.pid


def test_sweep__a_dead_process_scratch_database_is_dropped_a_running_one_kept(db: LiveDB):
    limit = 63 if db.server.engine == "postgresql" else 64
    suffix = f"_smscratch_{_host_tag()}_{_base36(dead_pid())}_{_base36(int(time.time()) - 600)}_abcd"
    stale = db.name[: limit - len(suffix)] + suffix
    db.server.create(stale)
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, db.server.engine, db.name, str(db.server.port), db.server.user],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        running = holder.stdout.readline().strip()
        assert running in db.server.databases(db.name)

        result = db.ok("backups")  # sweeps, and says what it removed
        assert f"Removed scratch database {stale}, left behind by an interrupted run" in result.stderr
        assert stale not in db.server.databases(db.name)
        assert running in db.server.databases(db.name)

        # An hour on, the running process's database is still kept: its process is alive.
        adapter = adapter_for(db.server, db.name)
        assert adapter.sweep_scratch(now=time.time() + 3600) == []
        assert running in db.server.databases(db.name)

        holder.kill()  # kill -9 mid-verification
        holder.wait()
        assert adapter.sweep_scratch(now=time.time()) == []  # within the grace period
        assert adapter.sweep_scratch(now=time.time() + 3600) == [running]
        assert db.leftovers() == []
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()
        for name in (stale, running if "running" in locals() else ""):
            if name:
                db.server.drop(name)


def test_sweep__names_of_other_databases_and_old_formats_are_left_alone(db: LiveDB):
    limit = 63 if db.server.engine == "postgresql" else 64
    other = f"zz{db.name}"[:20] + f"_smscratch_{_host_tag()}_{_base36(dead_pid())}_1_abcd"
    old_format = f"{db.name}_smscratch_0123abcd"
    kept_failed = f"{db.name}_smfailed_0123abcd"
    for name in (other, old_format, kept_failed):
        db.server.create(name[:limit])
    try:
        assert adapter_for(db.server, db.name).sweep_scratch(now=time.time() + 10 * 86400) == []
    finally:
        for name in (other, old_format, kept_failed):
            db.server.drop(name[:limit])
