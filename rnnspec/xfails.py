"""Expected failures kept by the user: ``--xfails FILE``.

One entry a line, ``PATTERN  # REASON``: PATTERN is a check id (``test_parity.py::
test_forward[gru-I5-H7-T6-B3-dtype=float64]``, the tail of a pytest node id) or a glob
over them (``test_parity.py::test_forward[*float64*]``: ``*`` and ``?`` only, brackets
literal); the reason is required. Blank lines and lines starting with ``#`` are comments.
A line ``[NAME]`` starts a section whose entries hold for the implementation ``NAME``
(the ``--impl`` name) alone, so one file keeps the known bugs of several libraries; the
entries above the first section hold for every implementation. A matched check that
fails is an expected failure with the reason; one that passes is reported as
XPASS(strict), a failure, so a fixed bug is noticed; a pattern that matches no check gets
a warning.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from rnnspec.errors import ConfigError

SECTION = re.compile(r"\[([^\[\]#\s]+)\]")


@dataclass(frozen=True)
class Xfail:
    pattern: str
    reason: str
    line: int
    implementation: str | None = None  # its section's; None: every implementation

    def matches(self, node_id: str) -> bool:
        """Whether the check ``node_id`` (a pytest node id, or its tail after a ``/``) is
        this entry's: ``*`` is any text, ``?`` one character, brackets are literal."""
        glob = re.escape(self.pattern).replace(r"\*", ".*").replace(r"\?", ".")
        return re.fullmatch(f"(.*/)?{glob}", node_id) is not None


def read(path: Path, *implementation: str) -> list[Xfail]:
    """The entries of an xfails file (given names of one implementation, such as its
    ``--impl`` and its registered name: those that hold for it); a line without a reason,
    or a ``[`` line that is not a section header, is an error naming it."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"cannot read xfails file {path}: {error}") from None
    entries = []
    section = None
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.startswith("["):
            header = SECTION.fullmatch(stripped.partition("#")[0].strip())
            if header is None:
                raise ConfigError(
                    f"{path}:{number}: a section header is '[IMPLEMENTATION]' (a comment may "
                    f"follow it); got {line!r}"
                )
            section = header.group(1)
            continue
        pattern, hash_sign, reason = stripped.partition("#")
        if not hash_sign or not reason.strip() or not pattern.strip():
            raise ConfigError(
                f"{path}:{number}: an entry is 'PATTERN  # REASON', with a reason, or a "
                f"section '[IMPLEMENTATION]'; got {line!r}"
            )
        entries.append(Xfail(pattern.strip(), reason.strip(), number, section))
    if not implementation:
        return entries
    return [entry for entry in entries if entry.implementation in (None, *implementation)]


def unmatched(entries: Iterable[Xfail], node_ids: Iterable[str]) -> list[Xfail]:
    """The entries that match none of ``node_ids``."""
    ids = list(node_ids)
    return [entry for entry in entries if not any(entry.matches(node) for node in ids)]
