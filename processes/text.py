"""Free text a job carries (a process's status or error message) made fit for any document and terminal.

A message is whatever a process, a batch system or a fetched file put into it. Control characters in it
are never meant to be read: XML 1.0 cannot carry C0 controls, lone surrogates or U+FFFE/U+FFFF at all (a
document holding one is not well-formed, and lxml refuses to build it), and DEL, the C1 controls and the
other non-characters, which XML admits, move terminal cursors (``hpc-wps jobs list``) or show as nothing.
So they are removed, both when a message is stored and when it is rendered; tab, line feed and carriage
return stay. Data values (a literal output) are not messages: the renderer shows those characters as
their code points instead, so no data is silently changed.
"""

from __future__ import annotations

import re

# The 66 Unicode non-characters: U+FDD0..U+FDEF and the last two code points of each of the 17 planes.
_NONCHARACTERS = "\ufdd0-\ufdef" + "".join(f"{chr(p + 0xFFFE)}{chr(p + 0xFFFF)}" for p in range(0, 0x110000, 0x10000))
CONTROL = re.compile(f"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff{_NONCHARACTERS}]")


def clean_message(text: str) -> str:
    """``text`` without control characters, surrogates and non-characters."""
    return CONTROL.sub("", text)
