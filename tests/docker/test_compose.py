"""docker-compose.yml and .env.example, checked without a Docker engine (parsed with PyYAML)."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlsplit

import pytest

yaml = pytest.importorskip("yaml")

ROOT = Path(__file__).resolve().parents[2]
ENV_EXAMPLE = (ROOT / ".env.example").read_text()


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def default(value: str) -> str:
    """The default of a ``${NAME:-default}`` interpolation (the value itself when there is none)."""
    match = re.fullmatch(r"\$\{(\w+):-([^}]*)\}", value)
    return match.group(2) if match else value


def documented(name: str) -> bool:
    """``NAME=`` appears in .env.example, set or commented out."""
    return re.search(rf"^#? ?{name}=", ENV_EXAMPLE, re.MULTILINE) is not None


def test_compose__web_and_worker_share_the_data_volume(compose):
    services = compose["services"]
    assert {"web", "worker", "postgres", "redis"} <= set(services)
    for name in ("web", "worker"):
        service = services[name]
        assert "data:/data" in service["volumes"]
        assert service["build"] == "."
        assert service["restart"] == "unless-stopped"
        env = service["environment"]
        assert default(env["DATABASE_URL"]) == "sqlite:////data/db/fitness.sqlite3"
        assert default(env["SAFEMIGRATE_BACKUP_DIR"]) == "/data/db/backups"
        assert env["SECRET_KEY"].startswith("${SECRET_KEY:?")  # no default secret: refuse to start
        assert {"path": ".env", "required": False} in service["env_file"]
        assert "profiles" not in service  # started by a plain `docker compose up -d`
    assert set(compose["volumes"]) >= {"data", "pgdata"}


def test_compose__worker_runs_qcluster_and_leaves_migrating_to_web(compose):
    worker = compose["services"]["worker"]
    assert worker["command"] == ["python", "manage.py", "qcluster"]
    assert default(worker["environment"]["SKIP_MIGRATE"]) == "1"
    assert worker["healthcheck"] == {"disable": True}  # no HTTP server to probe
    assert "ports" not in worker
    web = compose["services"]["web"]
    assert "command" not in web  # the image's gunicorn
    assert "SKIP_MIGRATE" not in web["environment"]
    assert web["ports"] == ["${WEB_BIND:-127.0.0.1}:${WEB_PORT:-8000}:8000"]


def test_compose__stop_grace_period_leaves_time_to_roll_back(compose):
    for name in ("web", "worker"):
        period = compose["services"][name]["stop_grace_period"]
        seconds = sum(
            int(n) * {"h": 3600, "m": 60, "s": 1}[unit] for n, unit in re.findall(r"(\d+)([hms])", period)
        )
        assert seconds >= 60, period


def test_compose__postgres_profile_with_healthcheck_and_its_own_volume(compose):
    postgres = compose["services"]["postgres"]
    assert postgres["profiles"] == ["postgres"]
    assert "pgdata:/var/lib/postgresql/data" in postgres["volumes"]
    assert "pg_isready" in " ".join(postgres["healthcheck"]["test"])
    # The image's pg_dump (bookworm's postgresql-client 15) must not be older than the server.
    assert re.fullmatch(r"postgres:15(-\w+)?", postgres["image"]), postgres["image"]
    assert re.search(r"^FROM python:\S+-bookworm$", (ROOT / "Dockerfile").read_text(), re.MULTILINE)
    for name in ("web", "worker"):
        depends = compose["services"][name]["depends_on"]
        assert depends["postgres"] == {"condition": "service_healthy", "required": False}
        assert depends["redis"] == {"condition": "service_healthy", "required": False}


def test_compose__redis_profile(compose):
    redis = compose["services"]["redis"]
    assert redis["profiles"] == ["redis"]
    assert redis["healthcheck"]["test"] == ["CMD", "redis-cli", "ping"]
    assert re.search(r"^# Q_BROKER_URL=redis://redis:6379/0$", ENV_EXAMPLE, re.MULTILINE)


def test_env_example__postgres_url_matches_the_postgres_service(compose):
    env = compose["services"]["postgres"]["environment"]
    [url] = re.findall(r"^# DATABASE_URL=(postgres://\S+)$", ENV_EXAMPLE, re.MULTILINE)
    parts = urlsplit(url)
    [password] = re.findall(r"^# POSTGRES_PASSWORD=(\S+)$", ENV_EXAMPLE, re.MULTILINE)
    assert parts.hostname == "postgres"  # the service name
    assert parts.port == 5432
    assert parts.username == default(env["APP_DB_USER"])  # the app's role, not the superuser
    assert env["POSTGRES_USER"] == "postgres"
    assert parts.password == password
    assert parts.path == "/" + default(env["POSTGRES_DB"])
    assert re.search(r"^# COMPOSE_PROFILES=postgres$", ENV_EXAMPLE, re.MULTILINE)


def test_compose__postgres_has_no_default_passwords_and_the_app_is_no_superuser(compose):
    env = compose["services"]["postgres"]["environment"]
    assert env["POSTGRES_PASSWORD"] == "${POSTGRES_SUPERUSER_PASSWORD}"
    assert env["APP_DB_PASSWORD"] == "${POSTGRES_PASSWORD}"
    [mount] = [v for v in compose["services"]["postgres"]["volumes"] if "initdb" in v]
    script = (ROOT / mount.split(":")[0]).read_text()
    assert "NOSUPERUSER" in script
    assert "APP_DB_PASSWORD:?" in script  # the init refuses to run without the password


def test_env_example__documents_every_variable_compose_interpolates():
    names = set(re.findall(r"\$\{(\w+)", (ROOT / "docker-compose.yml").read_text()))
    assert names >= {"SECRET_KEY", "DATABASE_URL", "POSTGRES_PASSWORD", "WEB_PORT"}
    assert sorted(n for n in names if not documented(n)) == []


def test_env_example__documents_every_setting_the_project_reads():
    """Every env.<type>("NAME") in fitnessdb/settings.py, and the entrypoint's variables."""
    settings_py = (ROOT / "fitnessdb/settings.py").read_text()
    names = set(re.findall(r"env\.\w+\(\s*\"([A-Z0-9_]+)\"", settings_py))
    assert {"DATABASE_URL", "SECRET_KEY", "SAFEMIGRATE_KEEP", "Q_BROKER_URL"} <= names
    entrypoint = (ROOT / "entrypoint.sh").read_text()
    names |= set(re.findall(r"\$\{([A-Z_]+):-", entrypoint)) - {"PYTHON"}
    assert "DB_WAIT_TIMEOUT" in names
    assert sorted(n for n in names if not documented(n)) == []


def test_env_example__sets_nothing_but_an_empty_secret_key():
    """Copied as is, .env sets no value that could be wrong: the rest is commented defaults."""
    assignments = re.findall(r"^([A-Z_]+)=(.*)$", ENV_EXAMPLE, re.MULTILINE)
    assert assignments == [("SECRET_KEY", "")]
