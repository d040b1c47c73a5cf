"""What a new user meets first: the local .env that run.sh writes, and docs that stay in the repo."""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _copy_scripts(tmp_path: Path) -> Path:
    (tmp_path / "scripts").mkdir()
    shutil.copy(ROOT / "scripts" / "dev_env.sh", tmp_path / "scripts" / "dev_env.sh")
    shutil.copytree(ROOT / "fitnessdb", tmp_path / "fitnessdb", ignore=shutil.ignore_patterns("__pycache__"))
    return tmp_path


def _run_dev_env(repo: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in {"SECRET_KEY", "DEBUG"}}
    env["PY"] = sys.executable
    return subprocess.run(
        ["bash", "scripts/dev_env.sh"], cwd=repo, env=env, capture_output=True, text=True, check=True
    )


def test_dev_env__writes_a_private_env_once_that_settings_accept(tmp_path):
    """After run.sh, manage.py works without DEBUG or SECRET_KEY in the environment."""
    repo = _copy_scripts(tmp_path)
    first = _run_dev_env(repo)
    assert "Wrote .env" in first.stdout
    env_file = repo / ".env"
    text = env_file.read_text()
    assert "DEBUG=1" in text
    key = re.search(r"^SECRET_KEY=(\S{40,})$", text, re.MULTILINE)
    assert key, text
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600

    again = _run_dev_env(repo)
    assert again.stdout == ""
    assert env_file.read_text() == text  # never overwritten: a user's edits stay

    # The project's settings read that .env: a manage.py command needs nothing else.
    env = {k: v for k, v in os.environ.items() if k not in {"SECRET_KEY", "DEBUG", "DJANGO_SETTINGS_MODULE"}}
    env["PYTHONPATH"] = str(repo)
    check = subprocess.run(
        [sys.executable, "-c", "import fitnessdb.settings as s; print(s.DEBUG, s.SECRET_KEY)"],
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert check.returncode == 0, check.stderr
    assert check.stdout.split() == ["True", key.group(1)]


def test_gitignore__keeps_env_out_of_commits():
    assert ".env" in (ROOT / ".gitignore").read_text().split()


def test_docs__never_point_outside_the_repository():
    """Users have the repository, not the workplace it was built in."""
    texts = [ROOT / "README.md", *(ROOT / "docs").glob("*.md"), *(ROOT / "bench").glob("*")]
    offenders = [
        f"{path.relative_to(ROOT)}: {match}"
        for path in texts
        if path.is_file()
        for match in re.findall(r"(?:/work/|\.\./shared|shared/BENCHMARKS)\S*", path.read_text())
    ]
    assert offenders == []
