"""The project's settings without safemigrate: the baseline for Django's own no-op ``migrate``.

bench/bench_sqlite.py runs ``manage.py migrate`` with these settings (bench/ on PYTHONPATH) next
to the real project, so the ratio shows what installing safemigrate costs a container start.
"""

from __future__ import annotations

from fitnessdb.settings import *  # noqa: F403

INSTALLED_APPS = [app for app in INSTALLED_APPS if app != "safemigrate"]  # noqa: F405
