"""The guide (docs/DATABASE_MIGRATION.md) and the README: every scenario covered, links that
resolve, and commands, flags and messages that are the real ones."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
from django.core.management import get_commands, load_command_class

ROOT = Path(__file__).resolve().parents[2]
GUIDE = ROOT / "docs" / "DATABASE_MIGRATION.md"
README = ROOT / "README.md"


def slug(heading: str) -> str:
    """GitHub's anchor for a heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    text = re.sub(r"```.*?```", "", path.read_text(), flags=re.DOTALL)
    return {slug(h) for h in re.findall(r"^#{1,6} (.+)$", text, re.MULTILINE)}


def links(path: Path) -> list[str]:
    return re.findall(r"\]\(([^)\s]+)\)", path.read_text())


def headings(path: Path) -> list[str]:
    text = re.sub(r"```.*?```", "", path.read_text(), flags=re.DOTALL)
    return re.findall(r"^#{2,3} (.+)$", text, re.MULTILINE)


def test_guide__covers_every_topic_and_scenario():
    found = headings(GUIDE)
    for expected in (
        "How it works",
        "Development workflow",
        "Production deployment with Docker Compose",
        "Getting at backups from the host",
        "Backup strategies",
        "Recovery scenarios",
        "A. A migration failed at start (bad migration)",
        "C. The database is corrupt",
        "D. The volume is lost; you have an off-site copy",
        "E. Moving from SQLite to PostgreSQL",
        "Troubleshooting",
        "Lock held",
        "Disk full",
        "Checksum mismatch (a damaged backup file)",
        "Wrong or missing encryption key",
        "Benchmarks",
    ):
        assert expected in found, expected
    text = GUIDE.read_text()
    for topic in ("Rotation.", "Schedules.", "Off-site copies.", "Encryption."):
        assert f"**{topic}**" in text, topic
    for how in (
        "docker compose exec web python manage.py backups",
        "restore --latest",
        "docker compose cp web:/data/db/backups",
    ):
        assert how in text, how


def test_guide__has_a_diagram_of_the_sequence():
    diagram = re.search(r"## How it works\n.*?```\n(.*?)```", GUIDE.read_text(), re.DOTALL)
    assert diagram
    steps = ["LOCK", "PRE-CHECK", "BACKUP", "MIGRATE", "POST-CHECK", "RESTORE", "queue rotation"]
    position = 0
    for step in steps:  # each step appears after the one before it
        position = diagram.group(1).find(step, position)
        assert position != -1, f"{step} missing or out of order"


def test_guide__benchmarks_section_links_to_bench():
    section = GUIDE.read_text().split("## Benchmarks", 1)[1]
    assert "](../bench/)" in section


@pytest.mark.parametrize("path", [GUIDE, README], ids=["guide", "readme"])
def test_docs__links_resolve(path):
    for target in links(path):
        if target.startswith(("http://", "https://", "mailto:")):
            continue
        file_part, _, anchor = target.partition("#")
        resolved = (path.parent / file_part).resolve() if file_part else path
        assert resolved.exists(), f"{path.name}: {target} -> {resolved} does not exist"
        if anchor:
            assert anchor in anchors(resolved), f"{path.name}: no heading for #{anchor}"


def test_readme__docker_section_before_the_recovery_guide_which_links_the_guide():
    text = README.read_text()
    assert text.index("\n## Docker\n") < text.index("\n## Recovery guide\n")
    recovery = text.split("\n## Recovery guide\n", 1)[1]
    assert "(docs/DATABASE_MIGRATION.md)" in recovery
    docker = text.split("\n## Docker\n", 1)[1].split("\n## ", 1)[0]
    for needed in ("docker compose up -d", "/data", "postgres", "docker compose exec web"):
        assert needed in docker, needed


def manage_invocations(text: str) -> list[tuple[str, list[str]]]:
    """(command, flags) for every ``manage.py <command> …`` written in the text."""
    found = []
    for match in re.finditer(r"manage\.py ([a-z_]+)([^`\n|;&)]*)", text):
        rest = match.group(2).replace("…", "")
        try:
            words = shlex.split(rest)
        except ValueError:
            words = rest.split()
        flags = [w.split("=")[0] for w in words if re.fullmatch(r"--[a-z][a-z-]*(=\S*)?", w)]
        found.append((match.group(1), flags))
    return found


@pytest.mark.parametrize("path", [GUIDE, README], ids=["guide", "readme"])
def test_docs__every_command_and_flag_exists(path):
    commands = get_commands()
    invocations = manage_invocations(path.read_text())
    assert invocations
    for name, flags in invocations:
        assert name in commands, f"{path.name}: no command {name!r}"
        parser = load_command_class(commands[name], name).create_parser("manage.py", name)
        known = {option for action in parser._actions for option in action.option_strings}
        unknown = [f for f in flags if f not in known]
        assert not unknown, f"{path.name}: manage.py {name} has no {unknown}"


# Messages the guide quotes, each as it appears in the code that prints it.
QUOTED_MESSAGES = {
    "safemigrate": [
        "Wait for it to finish, or raise ",
        "SAFEMIGRATE_LOCK_TIMEOUT",
        "Free space ",
        "(cleanupbackups) or set SAFEMIGRATE_BACKUP_DIR to a larger disk",
        "restore another backup (restore --list)",
        "the file is truncated or damaged; restore another backup",
        "is encrypted; set SAFEMIGRATE_ENCRYPTION_KEY to the key it was made with",
        "wrong SAFEMIGRATE_ENCRYPTION_KEY ",
        "(use the key the backup was made with)",
        "If the current database is damaged, restore with ",
        "rolled back by the database transaction — nothing ",
        "was written; the pre-migration backup ",
        "and is as it was before.",
        "writes by other connections after the backup cannot be ruled out",
        "the failed database is kept as ",
        "table, the failed database held no row written after the backup, so nothing was lost.",
        "rows differ from the backup, written after it by other connections or by ",
        " (review, then load with manage.py loaddata ",
        "Fix the migration and run safemigrate again",
        "AND the automatic restore failed",
        "--no-safety-backup --noinput",
        "nothing was changed. Restore a backup (restore --list, restore --latest)",
        ": another engine's backup cannot ",
        "be restored into it",
        "Type 'yes' to restore, anything else to cancel: ",
        "Rollback: database transaction. A verified backup is taken before these run and ",
        "kept; they run in one transaction, so any failure is rolled back by the database.",
    ],
    "entrypoint.sh": [
        "DATABASE_URL and that the database server is running, or raise ",
        "the container that migrates ",
        "safemigrate failed (exit $status): the migration was refused or rolled back (the",
        "line above says which, and why). Not starting: $*",
        "(MIGRATE_FAILURE_DELAY), so a restart policy does",
    ],
}


def test_guide__quoted_messages_are_the_real_ones():
    guide = " ".join(GUIDE.read_text().split())
    problems = []
    for where, fragments in QUOTED_MESSAGES.items():
        path = ROOT / where
        files = [path] if path.is_file() else sorted(path.rglob("*.py"))
        source = "\n".join(f.read_text() for f in files)
        for fragment in fragments:
            if fragment not in source:
                problems.append(f"{fragment!r} is no longer in {where}")
            shown = fragment.replace("$status", "1").replace("$*", "").strip()
            if shown not in guide:
                problems.append(f"the guide does not quote {shown!r}")
    assert problems == []
