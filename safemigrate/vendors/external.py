"""Running the server engines' client tools (pg_dump, pg_restore, mariadb-dump, mariadb).

Django's ``db/backends/*/client.py`` way: an argument list, secrets in the environment, never on
the command line; output streamed through pipes, never held whole in memory. Errors carry the
tool's stderr but never its arguments.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import subprocess
import tempfile
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
