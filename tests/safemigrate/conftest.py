"""Without django-q2 (safemigrate installed without its ``tasks`` extra), its task tests are not collected."""

from __future__ import annotations

import importlib.util

collect_ignore_glob = (
    [] if importlib.util.find_spec("django_q") else ["tasks/*.py", "offsite/test_offsite.py"]
)
