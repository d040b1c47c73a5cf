"""Settings for fitnessdb: the only module that reads the environment (through django-environ)."""

from __future__ import annotations

from email.utils import getaddresses
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
env_file = BASE_DIR / ".env"
if env_file.is_file():
    env.read_env(str(env_file), overwrite=False)

DEBUG = env.bool("DEBUG", default=False)

_DEV_SECRET_KEY = "django-insecure-dev-only-key-never-use-in-production"  # noqa: S105
SECRET_KEY = env.str("SECRET_KEY", default="")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "SECRET_KEY is not set: set SECRET_KEY in the environment or .env "
            "(or DEBUG=1 for a development key)."
        )
    SECRET_KEY = _DEV_SECRET_KEY

ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])
# HTTPS hardening (`check --deploy`): off by default, so plain-HTTP local use keeps working.
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=False)
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0)
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=False)
CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=False)

INSTALLED_APPS = [
    # safemigrate first: its `migrate` overrides Django's (and any later app's).
    "safemigrate",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_q",
    "fitnessdb.tracker",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Serves the static files collected into STATIC_ROOT under gunicorn (the Docker image).
    "whitenoise.middleware.WhiteNoiseMiddleware",
    # 503 + Retry-After for writes while safemigrate holds the migration lock (reads go on).
    "safemigrate.middleware.MigrationFenceMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "fitnessdb.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

WSGI_APPLICATION = "fitnessdb.wsgi.application"


def _database_from_url(url: str) -> dict:
    """Parse DATABASE_URL, turning a malformed one into one clear configuration error."""
    scheme = url.split("://", 1)[0] if "://" in url else ""
    if scheme not in environ.Env.DB_SCHEMES:
        raise ImproperlyConfigured(
            f"DATABASE_URL={url.split('@')[-1]!r} is not a supported database URL; "
            "use e.g. sqlite:////path/db.sqlite3, postgres://user@host:5432/name or "
            "mysql://user@host:3306/name"
        )
    try:
        config = env.db_url_config(url)
    except Exception as exc:  # django-environ raises several types for bad URLs
        raise ImproperlyConfigured(
            f"DATABASE_URL is not a valid database URL ({exc}); "
            "expected e.g. sqlite:///db.sqlite3 or postgres://user@host:5432/name"
        ) from exc
    engine = config.get("ENGINE", "")
    if not engine:
        raise ImproperlyConfigured(
            f"DATABASE_URL scheme is not supported: {url.split(':', 1)[0]!r}; "
            "use sqlite://, postgres:// or mysql://"
        )
    if engine == "django.db.backends.sqlite3":
        # A web process and a django-q2 worker share the file: WAL lets readers run beside a writer,
        # IMMEDIATE takes the write lock up front (no upgrade deadlocks), and the timeout waits for it.
        config.setdefault("OPTIONS", {})
        config["OPTIONS"].setdefault("timeout", 20)
        config["OPTIONS"].setdefault("transaction_mode", "IMMEDIATE")
        config["OPTIONS"].setdefault("init_command", "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;")
    return config


DATABASE_URL = env.str("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}")
DATABASES = {"default": _database_from_url(DATABASE_URL)}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = env.str("TIME_ZONE", default="UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = env.path("STATIC_ROOT", default=BASE_DIR / "staticfiles")

LOGIN_URL = "admin:login"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "loggers": {
        "safemigrate": {
            "handlers": ["console"],
            "level": env.str("SAFEMIGRATE_LOG_LEVEL", "WARNING"),
        },
    },
}

# --- safemigrate (see README "Settings"; safemigrate/conf.py documents defaults) ---------------
SAFEMIGRATE_BACKUP_DIR = env.str("SAFEMIGRATE_BACKUP_DIR", default="") or None
SAFEMIGRATE_KEEP = env.int("SAFEMIGRATE_KEEP", default=10)
SAFEMIGRATE_RETENTION = env.str("SAFEMIGRATE_RETENTION", default="") or None
SAFEMIGRATE_PIN_PRE_MIGRATE_DAYS = env.float("SAFEMIGRATE_PIN_PRE_MIGRATE_DAYS", default=7.0)
SAFEMIGRATE_COMPRESS = env.str("SAFEMIGRATE_COMPRESS", default="zstd")
SAFEMIGRATE_ENCRYPTION_KEY = env.str("SAFEMIGRATE_ENCRYPTION_KEY", default="") or None
# PostgreSQL/MariaDB: the account Verify loads scratch copies as (docs/postgresql-mariadb.md).
SAFEMIGRATE_SCRATCH_USER = env.str("SAFEMIGRATE_SCRATCH_USER", default="") or None
SAFEMIGRATE_SCRATCH_PASSWORD = env.str("SAFEMIGRATE_SCRATCH_PASSWORD", default="") or None
SAFEMIGRATE_SCHEDULE = env.str("SAFEMIGRATE_SCHEDULE", default="") or None
SAFEMIGRATE_VERIFY_SCHEDULE = env.str("SAFEMIGRATE_VERIFY_SCHEDULE", default="") or None
SAFEMIGRATE_INTEGRITY_CHECK = env.str("SAFEMIGRATE_INTEGRITY_CHECK", default="quick")
SAFEMIGRATE_LOCK_TIMEOUT = env.float("SAFEMIGRATE_LOCK_TIMEOUT", default=300.0)
SAFEMIGRATE_FENCE_RETRY_AFTER = env.int("SAFEMIGRATE_FENCE_RETRY_AFTER", default=30)
SAFEMIGRATE_JSON_AFTER_MIGRATE = env.bool("SAFEMIGRATE_JSON_AFTER_MIGRATE", default=False)
SAFEMIGRATE_MAX_BACKUP_AGE_HOURS = env.float("SAFEMIGRATE_MAX_BACKUP_AGE_HOURS", default=48.0)
SAFEMIGRATE_ADMIN_BACKUP_INTERVAL = env.float("SAFEMIGRATE_ADMIN_BACKUP_INTERVAL", default=300.0)
SAFEMIGRATE_FREE_SPACE_RESERVE = env.int("SAFEMIGRATE_FREE_SPACE_RESERVE", default=512 * 2**20)
SAFEMIGRATE_MAX_TOTAL_SIZE_MB = env.float("SAFEMIGRATE_MAX_TOTAL_SIZE_MB", default=0.0)
SAFEMIGRATE_MIN_FREE_SPACE_MB = env.float("SAFEMIGRATE_MIN_FREE_SPACE_MB", default=0.0)

# Notifications (README "Set up alerts"): mail_admins and webhooks, failures only by default.
SAFEMIGRATE_NOTIFY_LEVEL = env.str("SAFEMIGRATE_NOTIFY_LEVEL", default="failures")
SAFEMIGRATE_NOTIFY_MAIL_ADMINS = env.bool("SAFEMIGRATE_NOTIFY_MAIL_ADMINS", default=False)
SAFEMIGRATE_NOTIFY_SLACK = env.list("SAFEMIGRATE_NOTIFY_SLACK", default=[])
SAFEMIGRATE_NOTIFY_DISCORD = env.list("SAFEMIGRATE_NOTIFY_DISCORD", default=[])
SAFEMIGRATE_NOTIFY_WEBHOOKS = env.list("SAFEMIGRATE_NOTIFY_WEBHOOKS", default=[])
SAFEMIGRATE_NOTIFY_ATTEMPTS = env.int("SAFEMIGRATE_NOTIFY_ATTEMPTS", default=3)
SAFEMIGRATE_NOTIFY_RETRY_DELAY = env.float("SAFEMIGRATE_NOTIFY_RETRY_DELAY", default=2.0)
SAFEMIGRATE_NOTIFY_TIMEOUT = env.float("SAFEMIGRATE_NOTIFY_TIMEOUT", default=10.0)
# Who mail_admins writes to ("Name <address>", comma-separated) and how (EMAIL_URL, e.g.
# smtp+tls://user:password@smtp.example.com:587; the default prints mail on the console).
ADMINS = getaddresses(env.list("ADMINS", default=[]))
vars().update(env.email_url("EMAIL_URL", default="consolemail://"))
SERVER_EMAIL = env.str("SERVER_EMAIL", default="root@localhost")

# Off-site copies of backups: STORAGES["backups"], only when a target is configured (safemigrate
# copies each backup there, `restore --from-storage NAME` fetches one back). Either an S3 bucket
# (django-storages: pip install '.[s3]'; credentials from AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY,
# else boto3's usual chain: instance role, ~/.aws) or a folder on another disk (a NAS mount).
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
_s3_bucket = env.str("SAFEMIGRATE_S3_BUCKET", default="")
_offsite_dir = env.str("SAFEMIGRATE_STORAGE_DIR", default="")
if _s3_bucket and _offsite_dir:
    raise ImproperlyConfigured(
        "SAFEMIGRATE_S3_BUCKET and SAFEMIGRATE_STORAGE_DIR are both set; choose one off-site target"
    )
if _s3_bucket:
    STORAGES["backups"] = {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": _s3_bucket,
            "location": env.str("SAFEMIGRATE_S3_PREFIX", default=""),
            "endpoint_url": env.str("SAFEMIGRATE_S3_ENDPOINT_URL", default="") or None,
            "region_name": env.str("SAFEMIGRATE_S3_REGION", default="") or None,
            "access_key": env.str("AWS_ACCESS_KEY_ID", default="") or None,
            "secret_key": env.str("AWS_SECRET_ACCESS_KEY", default="") or None,
            "default_acl": None,  # the bucket's own policy (private)
            "querystring_auth": True,
        },
    }
elif _offsite_dir:
    STORAGES["backups"] = {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {
            "location": _offsite_dir,
            "base_url": None,
            "file_permissions_mode": 0o600,
            "directory_permissions_mode": 0o700,
        },
    }
# The storage alias backups are copied to; "backups" by default when one is configured above.
SAFEMIGRATE_STORAGE = (
    env.str("SAFEMIGRATE_STORAGE", default="backups" if "backups" in STORAGES else "") or None
)

# --- django-q2: the ORM broker (no extra service) unless a Redis URL is given ------------------
# Queued tasks wait in the broker (the django_q_ormq table, or a Redis list) until a worker
# (`manage.py qcluster`) runs; results and failures are kept in the database (django-q2's admin).
Q_BROKER_URL = env.str("Q_BROKER_URL", default="") or env.str("REDIS_URL", default="")
_broker_scheme = Q_BROKER_URL.split("://", 1)[0] if "://" in Q_BROKER_URL else Q_BROKER_URL
if Q_BROKER_URL and _broker_scheme not in ("redis", "rediss", "unix"):
    raise ImproperlyConfigured(
        f"Q_BROKER_URL (or REDIS_URL) is a {_broker_scheme[:20]!r} URL; the broker must be Redis "
        "(redis://host:6379/0, rediss://… or unix://…). Unset it to use the database as the broker"
    )
Q_CLUSTER: dict = {
    "name": "fitnessdb",
    "workers": env.int("Q_WORKERS", default=2),
    "timeout": env.int("Q_TIMEOUT", default=3600),  # a backup of a big database may take long
    "retry": env.int("Q_RETRY", default=3700),  # must exceed timeout
    "max_attempts": 1,  # a failed backup or rotation is recorded, not blindly repeated
    "catch_up": False,  # after downtime, one run per schedule, not every missed one
    "label": "Tasks",
    "sync": env.bool("Q_SYNC", default=False),
}
if Q_BROKER_URL:
    Q_CLUSTER["redis"] = Q_BROKER_URL
else:
    Q_CLUSTER["orm"] = "default"
