# fitnessdb: every container start migrates safely (entrypoint.sh), backups live in the /data volume.
#   docker compose up -d                      (see docker-compose.yml and docs/DATABASE_MIGRATION.md)
#   docker build -t fitnessdb . && docker run -e SECRET_KEY=... -v fitnessdb-data:/data -p 8000:8000 fitnessdb
FROM python:3.11-slim-bookworm

# EXTRAS: extras of the safemigrate distribution in pyproject.toml, comma-separated (e.g. "s3").
ARG EXTRAS=""

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# postgresql-client: pg_dump/pg_restore for PostgreSQL backups (version 15, as the compose profile's
# server). The app runs as "app", which owns only /data (database, backups); the code stays root's.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends postgresql-client \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --home-dir /data --no-create-home \
       --shell /usr/sbin/nologin app \
    && mkdir -p /data/db/backups \
    && chown -R app:app /data

WORKDIR /app

# Dependencies first, from pyproject.toml alone: this layer is rebuilt only when pyproject.toml
# (or EXTRAS) changes, not on every source edit. They are the fitnessdb dependency group's, with
# safemigrate's own (and its extras) in place of safemigrate, which runs from /app like the site.
COPY pyproject.toml ./
RUN python -c "import re, tomllib; t = tomllib.load(open('pyproject.toml', 'rb')); p = t['project']; \
group = [d for d in t['dependency-groups']['fitnessdb'] if isinstance(d, str)]; \
own = [d for d in group if re.match(r'safemigrate\b', d)]; \
extras = {e for d in own for e in re.findall(r'\[(.*)\]', d)[0].split(',')}; \
extras |= {e for e in '${EXTRAS}'.split(',') if e}; \
deps = p['dependencies'] + [d for d in group if d not in own]; \
deps += [d for e in sorted(extras) for d in p['optional-dependencies'][e]]; \
open('/tmp/requirements.txt', 'w').write('\n'.join(deps) + '\n')" \
    && pip install --no-cache-dir -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt

COPY . .

# Static files are collected and the code byte-compiled at build time (with PYTHONDONTWRITEBYTECODE
# and a non-root user, every start would recompile it: the no-op migrate would pay ~40 ms). The
# SECRET_KEY here exists only for this one command: it is not in the image's environment, and the
# running container refuses to start without one.
RUN SECRET_KEY=collectstatic-build-only DATABASE_URL=sqlite:////tmp/build.sqlite3 \
    python manage.py collectstatic --noinput --verbosity 0 \
    && python -m compileall -q /app/fitnessdb /app/safemigrate \
    && chmod 0755 /app/entrypoint.sh

USER 10001:10001

ENV DATABASE_URL=sqlite:////data/db/fitness.sqlite3 \
    SAFEMIGRATE_BACKUP_DIR=/data/db/backups \
    WEB_CONCURRENCY=2

# The database and its backups: mount a named volume here (docker-compose.yml does).
VOLUME ["/data"]
EXPOSE 8000

# /healthz/backups (safemigrate's health endpoint) answers 200 when the app serves, its database
# answers, no migration is pending and the backup monitors are quiet (503 otherwise: see README
# "Health endpoint"); the Host header is the first ALLOWED_HOSTS entry so a production
# ALLOWED_HOSTS does not turn the probe into a 400.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request as r; h = os.environ.get('ALLOWED_HOSTS', 'localhost').split(',')[0].strip(' .*') or 'localhost'; r.urlopen(r.Request('http://127.0.0.1:8000/healthz/backups', headers={'Host': h}), timeout=4)"]

ENTRYPOINT ["/app/entrypoint.sh"]
CMD ["gunicorn", "fitnessdb.wsgi", "--bind", "0.0.0.0:8000", "--access-logfile", "-", "--graceful-timeout", "30"]
