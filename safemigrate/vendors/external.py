"""Running the server engines' client tools (pg_dump, pg_restore, mariadb-dump, mariadb).

Django's ``db/backends/*/client.py`` way: an argument list, secrets in the environment, never on
the command line; output streamed through pipes, never held whole in memory. Errors carry the
tool's stderr but never its arguments.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import re
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import IO

from safemigrate.constants import CHUNK
from safemigrate.exceptions import SafeMigrateError
from safemigrate.streams import WritableStream

_F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)


def find_tool(names: Iterable[str], *, error: type[SafeMigrateError], install: str) -> str:
    """The first of ``names`` on PATH; else ``error`` saying what to install."""
    names = list(names)
    for name in names:
        found = shutil.which(name)
        if found:
            return found
    raise error(f"{names[0]} not found: {install}")


def tool_version(path: str, env: Mapping[str, str] | None = None) -> str:
    """The first line of ``<tool> --version`` ('' if it cannot tell)."""
    try:
        done = subprocess.run(  # noqa: S603 - fixed argument list
            [path, "--version"], capture_output=True, text=True, timeout=30, check=False, env=env
        )
    except (OSError, subprocess.SubprocessError):
        return ""
    return (done.stdout or done.stderr).strip().splitlines()[0] if (done.stdout or done.stderr) else ""


def scratch_account() -> tuple[str, str] | None:
    """(user, password) of SAFEMIGRATE_SCRATCH_USER, the account Verify loads and checks scratch
    copies as (one that can reach nothing but the scratch databases); None when not configured."""
    from django.conf import settings

    user = getattr(settings, "SAFEMIGRATE_SCRATCH_USER", None)
    if not user:
        return None
    return str(user), str(getattr(settings, "SAFEMIGRATE_SCRATCH_PASSWORD", None) or "")


# --- scratch databases: named after their owner, so a sweep can tell a dead one -------------
SCRATCH_DEAD_GRACE = 60.0
"""Seconds a dead process's scratch database is left alone (as for leftover files)."""
SCRATCH_STALE_AFTER = 24 * 3600.0
"""Seconds after which a scratch database is stale whoever made it (another host, a reused pid)."""
_SCRATCH = re.compile(r"_smscratch_([0-9a-f]{4})_([0-9a-z]+)_([0-9a-z]+)_[0-9a-f]{4}")


def _base36(n: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while True:
        n, r = divmod(n, 36)
        out = digits[r] + out
        if not n:
            return out


def _host_tag() -> str:
    """This host and boot: a pid means something only on the host (and boot) that gave it."""
    boot = ""
    with contextlib.suppress(OSError):
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    return hashlib.sha256(f"{socket.gethostname()}\0{boot}".encode()).hexdigest()[:4]


def scratch_name(live: str, *, limit: int) -> str:
    """``<live>_smscratch_<host>_<pid>_<time>_<random>`` within ``limit`` bytes: who made it, when."""
    suffix = (
        f"_smscratch_{_host_tag()}_{_base36(os.getpid())}_{_base36(int(time.time()))}_{secrets.token_hex(2)}"
    )
    return live.encode()[: limit - len(suffix)].decode(errors="ignore") + suffix


def stale_scratch(names: Iterable[str], live: str, *, limit: int, now: float | None = None) -> list[str]:
    """Which of ``names`` are scratch databases of ``live`` whose maker is gone.

    Those of a process on this host that no longer runs (after a grace), or older than a day
    whoever made them; never this process's own, nor one of a live process (a running Verify,
    which does not take the migration lock).
    """
    now = time.time() if now is None else now
    here = _host_tag()
    stale = []
    for name in names:
        found = _SCRATCH.search(name)
        if not found or found.end() != len(name):
            continue
        prefix = name[: found.start()]
        if live.encode()[: limit - len(found[0])].decode(errors="ignore") != prefix:
            continue
        host, pid, created = found[1], int(found[2], 36), int(found[3], 36)
        age = now - created
        if host == here and pid == os.getpid():
            continue
        if age > SCRATCH_STALE_AFTER or (host == here and age > SCRATCH_DEAD_GRACE and not _alive(pid)):
            stale.append(name)
    return stale


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def child_env(extra: Mapping[str, str]) -> dict[str, str]:
    """The environment of a client tool: ours (PATH, HOME, locale) plus connection settings."""
    return {**os.environ, **extra}


def _grow_pipe(stream: IO[bytes] | None) -> None:
    """Ask for a 1 MiB pipe (Linux) so the tool and we exchange large blocks, not 64 KiB ones."""
    if stream is not None:
        with contextlib.suppress(OSError, ValueError):
            fcntl.fcntl(stream.fileno(), _F_SETPIPE_SZ, CHUNK)


def _stderr_text(err: IO[bytes]) -> str:
    """The tool's last error lines, without the failed statement the mariadb client echoes
    between ``-----`` rulers (it may hold a whole row of data)."""
    err.seek(0)
    lines: list[str] = []
    echoed = False
    for raw in err.read().decode("utf-8", "replace").splitlines():
        line = raw.strip()
        if line and set(line) == {"-"}:
            echoed = not echoed
        elif line and not echoed:
            lines.append(line if len(line) <= 300 else line[:300] + "…")
    return "; ".join(lines[-6:]) or "no error output"


def _start(
    args: list[str], *, env: Mapping[str, str], error: type[SafeMigrateError], **kwargs: object
) -> subprocess.Popen[bytes]:
    try:
        return subprocess.Popen(args, env=dict(env), **kwargs)  # type: ignore[call-overload,no-any-return]  # noqa: S603
    except OSError as exc:
        # Never the argument list in the message: only the tool's name.
        raise error(f"cannot run {Path(args[0]).name}: {exc.strerror or exc}") from None


def _stop(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(OSError):
        proc.kill()
    proc.wait()


def stream_out(
    args: list[str],
    *,
    env: Mapping[str, str],
    sink: WritableStream,
    error: type[SafeMigrateError],
    what: str,
    hint: str = "",
) -> None:
    """Run a tool and stream its stdout into ``sink``; a non-zero exit raises ``error``."""
    with tempfile.TemporaryFile() as err:
        proc = _start(
            args, env=env, error=error, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err
        )
        out = proc.stdout
        if out is None:  # pragma: no cover - stdout=PIPE always gives one
            raise error(f"{what} failed: no output pipe")
        try:
            _grow_pipe(out)
            while chunk := out.read(CHUNK):
                sink.write(chunk)
        except BaseException:
            _stop(proc)
            raise
        finally:
            out.close()
        if proc.wait():
            raise error(f"{what} failed: {_stderr_text(err)}{hint}")


def stream_in(
    args: list[str],
    *,
    env: Mapping[str, str],
    chunks: Iterable[bytes],
    error: type[SafeMigrateError],
    what: str,
    hint: str = "",
) -> None:
    """Run a tool fed with ``chunks`` on stdin; a non-zero exit raises ``error``.

    An exception while producing the chunks (a damaged backup) stops the tool and propagates.
    """
    with tempfile.TemporaryFile() as err:
        proc = _start(
            args, env=env, error=error, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=err
        )
        pipe = proc.stdin
        if pipe is None:  # pragma: no cover - stdin=PIPE always gives one
            raise error(f"{what} failed: no input pipe")
        _grow_pipe(pipe)
        try:
            try:
                for chunk in chunks:
                    pipe.write(chunk)
                pipe.close()
            except BrokenPipeError:
                pass  # the tool stopped reading: its exit status and stderr say why
        except BaseException:
            _stop(proc)
            raise
        finally:
            with contextlib.suppress(BrokenPipeError):
                pipe.close()
        if proc.wait():
            raise error(f"{what} failed: {_stderr_text(err)}{hint}")
        # Exit 0 without reading everything would be a tool bug; never let it pass silently.
        for _ in chunks:
            raise error(f"{what} stopped before the end of the backup without an error")
