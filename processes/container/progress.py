"""Progress a container reports: a small file it may write, read by whoever follows it.

A container process finds the file's path in ``$HPC_WPS_PROGRESS`` (``/progress/status``, in a writable
mount of its own, apart from ``/outputs``) and may write into it, whenever it likes, either a line
``PERCENT MESSAGE`` (``echo "40 reading the grid" > "$HPC_WPS_PROGRESS"``) or a JSON object
``{"percent": 40, "message": "reading the grid"}``; a Python process run in a container (``mode =
docker``) reports through the launcher's ``status.json``, which has the JSON form. The file is the
container's to write, so nothing in it is trusted: at most ``PROGRESS_LIMIT`` bytes are read, the
percentage must be a whole number and is kept within 0..100, the message loses its control characters
and is cut at ``MESSAGE_LIMIT`` characters, and a file that does not read as either form (a half-written
one, say) is ignored until it does.
"""

from __future__ import annotations

import json
import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path

from processes.text import clean_message

PROGRESS_ENV = "HPC_WPS_PROGRESS"
PROGRESS_MOUNT = "/progress"
PROGRESS_FILE = f"{PROGRESS_MOUNT}/status"
PROGRESS_LIMIT = 4096  # bytes read of the file
MESSAGE_LIMIT = 200  # characters kept of its message
DEFAULT_MESSAGE = "running"
_LINE = re.compile(r"\s*([+-]?[0-9]{1,12})(?:\s+(.*))?\s*", re.DOTALL)


@dataclass(frozen=True)
class Progress:
    percent: int | None
    message: str


def _percent(value: object) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError("the percentage is no whole number")
    return max(0, min(100, value))


def parse_progress(text: str) -> Progress | None:
    """``PERCENT MESSAGE`` or ``{"percent": n, "message": "..."}`` (either part may be left out of the
    JSON form); None for anything else."""
    text = text.strip()
    try:
        if text.startswith("{"):
            data = json.loads(text, strict=False)  # a raw control character too: it is cleaned below
            percent = data.get("percent")
            message = data.get("message") or DEFAULT_MESSAGE
            if not isinstance(message, str):
                return None
            return _progress(None if percent is None else _percent(percent), message)
        match = _LINE.fullmatch(text)
        if match is None:
            return None
        return _progress(_percent(int(match.group(1))), match.group(2) or DEFAULT_MESSAGE)
    except (ValueError, AttributeError):  # not JSON, not an object, not a whole number
        return None


def _progress(percent: int | None, message: str) -> Progress:
    cleaned = " ".join(clean_message(message).split())[:MESSAGE_LIMIT]
    return Progress(percent, cleaned or DEFAULT_MESSAGE)


def read_progress(path: Path) -> Progress | None:
    """The progress in ``path``; None when there is none yet or it does not read.

    The container owns the directory: a symbolic link there (to a file of the host's) is never
    followed, and a FIFO or device never opened for long, so only a regular file is read.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        data = os.read(fd, PROGRESS_LIMIT + 1)
    except OSError:
        return None
    finally:
        os.close(fd)
    if len(data) > PROGRESS_LIMIT:
        return None
    return parse_progress(data.decode("utf-8", errors="replace"))
