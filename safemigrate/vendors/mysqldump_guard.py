"""Checking a mariadb-dump/mysqldump stream, statement by statement, before the client runs it.

A backup file may be crafted, and the ``mariadb`` client runs whatever it holds with the
application's account: ``USE live;``, ``INSERT INTO live.t``, ``DROP DATABASE``, ``GRANT``,
``LOAD DATA``, ``SELECT ... INTO OUTFILE`` reach past the scratch schema it is loaded into. The
guard sees each statement before the client does (the stream passes through it on the way) and
stops the load at the first one that names another schema or acts on the server; MariaDB's
executable comments (``/*! ... */``) are read as the code they are. Rows are checked to be plain
literals, so no statement can hide among them.
"""

from __future__ import annotations

import re

_STRING = re.compile(rb"'[^'\\]*(?:\\.[^'\\]*)*'|\"[^\"\\]*(?:\\.[^\"\\]*)*\"")
_EXEC_COMMENT = re.compile(rb"/\*M?!\d*|/\*|\*/")
_ROWS = re.compile(rb"(?:\((?:[^;()\\`'\"\n]++|'(?:[^'\\\n]++|\\.)*+')*+\)[,;][ \t\r]*\n)*+")
"""Whole lines of plain rows: literals (numbers, NULL, _binary '…', 0x…) between parentheses."""
_INSERT_ROWS = re.compile(rb"INSERT INTO `(?:[^`]|``)+` VALUES\s*")
_INSERT_LINE = re.compile(
    rb"INSERT INTO `(?:[^`]|``)+` VALUES (?:\((?:[^;()\\`'\"\n]++|'(?:[^'\\\n]++|\\.)*+')*+\),?)++;\s*"
)
_ALTER_OWN_CHARSET = re.compile(
    rb"ALTER DATABASE `(?:[^`]|``)+`( CHARACTER SET \w+ COLLATE \w+ ;)\s*", re.IGNORECASE
)
"""What mariadb-dump writes around a routine made under another charset: it names the dumped
schema, which would change the live one; without a name it changes the current (scratch) one."""
_IDENT = re.compile(rb"`(?:[^`]|``)*`")
_CLIENT_COMMAND = re.compile(
    rb"^\s*(?:\\(?!-)|(?:use|connect|source|system|tee|notee|pager|charset|ego|go|print|prompt|"
    rb"rehash|status|warnings|nowarning|query_attributes)\b)",
    re.IGNORECASE | re.MULTILINE,
)
_REFUSED = [
    (re.compile(p, re.IGNORECASE), what)
    for p, what in (
        (rb"^\s*USE\b", "changes the current schema"),
        (rb"\\[a-z]", "holds a client command"),
        (
            rb"\b(?:CREATE|DROP|ALTER)\s+(?:DATABASE|SCHEMA|USER|ROLE|SERVER|EVENT)\b",
            "acts outside the schema",
        ),
        (rb"\b(?:CREATE|ALTER)\b[^;]*\bEVENT\b", "schedules an event"),
        (rb"\b(?:GRANT|REVOKE)\b", "changes privileges"),
        (rb"\bRENAME\s+USER\b", "changes an account"),
        (rb"\bSET\s+(?:GLOBAL|PASSWORD|ROLE|DEFAULT\s+ROLE)\b|@@GLOBAL\.", "changes the server"),
        (rb"\bLOAD\s+(?:DATA|XML)\b|\bLOAD_FILE\s*\(", "reads a file"),
        (rb"\bINTO\s+(?:OUT|DUMP)FILE\b", "writes a file"),
        (rb"\b(?:UN)?INSTALL\s+(?:PLUGIN|SONAME)\b", "installs server code"),
        (rb"\b(?:KILL|SHUTDOWN|FLUSH|RESET|PURGE)\b", "acts on the server"),
        (
            rb"\b(?:CHANGE\s+MASTER|START\s+(?:SLAVE|REPLICA)|STOP\s+(?:SLAVE|REPLICA))\b",
            "acts on the server",
        ),
        (rb"\bPREPARE\b|\bEXECUTE\s+IMMEDIATE\b", "runs dynamic SQL"),
        (rb"\bHANDLER\b[^;]*\bOPEN\b", "opens another table"),
    )
]


class DumpRefused(Exception):
    """A statement in the dump reaches outside the scratch schema (the message names it)."""


class DumpGuard:
    """Fed the dump's bytes in order (``write``); raises DumpRefused at the first bad statement.

    ``schemas``: every schema on the server but the scratch one, which no statement may name.
    """

    def __init__(self, schemas: set[str]) -> None:
        names = sorted({s.lower() for s in schemas}, key=len, reverse=True)
        alternatives = b"|".join(re.escape(n.encode()) for n in names) or b"(?!)"
        # `live`.x or live.x: a schema-qualified name (a table.column pair never names a schema).
        self._qualified = re.compile(
            rb"(?:`(?:" + alternatives + rb")`|(?<![\w$`.])(?:" + alternatives + rb"))\s*\.\s*[`\w]",
            re.IGNORECASE,
        )
        self.tail = b""
        self.statement: list[bytes] = []
        self.delimiter = b";"
        self.in_rows = False
        self.line_no = 0

    def feed(self, chunk: bytes) -> bytes:
        """The checked whole lines of what was fed so far (an unfinished line is held back, so
        the client never receives a byte the guard has not seen)."""
        data = self.tail + chunk if self.tail else chunk
        end = data.rfind(b"\n") + 1
        self.tail = data[end:]
        pos = 0
        edits: list[tuple[int, int, bytes]] = []  # (start, stop, replacement), rarely any
        while pos < end:
            if self.in_rows:  # one regex over the block of rows: the dump's bulk, kept fast
                stop = data.find(b";\n", pos, end)
                last = end if stop < 0 else stop + 2
                if not _ROWS.fullmatch(data, pos, last):
                    self.line_no += 1
                    self._refuse("is not a row of plain values", self._bad_row(data, pos, last))
                self.line_no += data.count(b"\n", pos, last)
                self.in_rows = stop < 0
                pos = last
                continue
            newline = data.index(b"\n", pos, end)
            self.line_no += 1
            line = data[pos:newline]
            passed = self._line(line)
            if passed is not line:
                edits.append((pos, newline, passed))
            pos = newline + 1
        if not edits:
            return data[:end]
        out, last = [], 0
        for start, stop, replacement in edits:
            out += [data[last:start], replacement]
            last = stop
        return b"".join([*out, data[last:end]])

    def _bad_row(self, data: bytes, pos: int, last: int) -> bytes:
        """The first line of ``data[pos:last]`` that is not a plain row (its line number noted)."""
        for line in data[pos:last].split(b"\n"):
            if not _ROWS.fullmatch(line + b"\n"):
                return line
            self.line_no += 1
        return data[pos:last][:80]

    def finish(self) -> bytes:
        """At the end of the stream: the last line (checked) and any unterminated statement."""
        tail, self.tail = self.tail, b""
        if tail:
            self.line_no += 1
            tail = self._line(tail)
        if self.statement:
            self._check(b"\n".join(self.statement))
        return tail

    def _refuse(self, what: str, text: bytes) -> None:
        shown = " ".join(text.decode("utf-8", "replace").split())[:80]
        raise DumpRefused(f"line {self.line_no} {what}: {shown}")

    def _line(self, line: bytes) -> bytes:
        """Check one line; the line to pass on to the client."""
        if self.in_rows:  # the stream's last line, without its newline
            if not _ROWS.fullmatch(line + b"\n"):
                self._refuse("is not a row of plain values", line)
            self.in_rows = not line.rstrip().endswith(b";")
            return line
        if not self.statement:
            stripped = line.strip()
            if not stripped or stripped.startswith((b"-- ", b"#")) or stripped == b"--":
                return line
            if stripped.upper().startswith(b"DELIMITER "):
                self.delimiter = stripped[10:].strip() or b";"
                return line
            if _INSERT_ROWS.fullmatch(line):
                self.in_rows = True
                return line
            if line.startswith(b"INSERT INTO `"):
                if not _INSERT_LINE.fullmatch(line):
                    self._refuse("is not a plain INSERT of values", line)
                return line
            if self.delimiter == b";" and (own := _ALTER_OWN_CHARSET.fullmatch(line)):
                return b"ALTER DATABASE" + own[1]
        self.statement.append(line)
        if line.rstrip().endswith(self.delimiter):
            text, self.statement = b"\n".join(self.statement), []
            self._check(text)
        return line

    def _check(self, text: bytes) -> None:
        bare = _EXEC_COMMENT.sub(b" ", _STRING.sub(b"''", text))
        if _CLIENT_COMMAND.search(bare):
            self._refuse("holds a client command", text)
        if self._qualified.search(bare):
            self._refuse("names another schema", text)
        words = _IDENT.sub(b"``", bare)  # a column named `status` is no statement
        for pattern, what in _REFUSED:
            if pattern.search(words):
                self._refuse(what, text)
