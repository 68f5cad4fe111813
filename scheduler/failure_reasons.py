"""Why a job failed, as one of a few fixed words: the label of the failures metric.

A failed job keeps one readable message, which can hold anything (a process's own error text, the
tail of a batch job's standard error), so it can never be a metric label. The messages our own code
writes start with fixed phrases (the dispatcher prefixes an executor's reason with "the job's
process"); each reason below matches those phrases at the start of the message. Anything else is a
failure the process itself reported or raised: "process error".
"""

from __future__ import annotations

import re

PROCESS_ERROR = "process error"
_SETTLED = "the job's process "

# (reason, pattern matched at the start of the lower-cased message), tried in this order.
_RULES: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (reason, re.compile(pattern))
    for reason, pattern in (
        ("disk full", r".*(?:no space left on device|disk quota exceeded)"),
        (
            "submission failed",
            rf"could not be submitted|the container engine refused|{_SETTLED}could not (?:be started|start)",
        ),
        ("interrupted", rf"interrupted|{_SETTLED}(?:was )?interrupted|the container was never started"),
        (
            "time limit",
            rf"time limit of \S+ s exceeded|{_SETTLED}exceeded its (?:time|wall-clock) limit"
            r"|the container exceeded its time limit",
        ),
        (
            "out of memory",
            rf"{_SETTLED}was killed on \S+ for using more than the memory|the container exceeded its memory",
        ),
        ("cancelled outside", rf"{_SETTLED}(?:was cancelled|was deleted|lost its container)"),
        ("crash", rf"{_SETTLED}(?:killed by|was killed by|exited with code|failed on|ended|raised)"),
        (
            "system failure",
            rf"{_SETTLED}(?:was ended on|was preempted|missed its deadline|was revoked|is no longer known)"
            r"|the container disappeared|recording the container's end failed",
        ),
        ("launch failed", r"the launcher|cannot stage the job"),
        ("process unavailable", r"(?:the )?process (?:\S+ )?is no longer offered"),
        ("invalid input", r"input \S+: "),
    )
)
REASONS = (*(reason for reason, _ in _RULES), PROCESS_ERROR)


def failure_reason(message: str | None) -> str:
    """One of ``REASONS`` for a failed job's message."""
    text = (message or "").lower()
    for reason, pattern in _RULES:
        if pattern.match(text):
            return reason
    return PROCESS_ERROR
