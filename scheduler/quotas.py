"""The ``[quotas]`` of one user (a job's ``owner``): what each counts, and how a job is created only
within them, even while several web workers submit for the same user at once.

``queued_per_user`` and ``sync_per_user`` are checked by the INSERT itself: the row is inserted only
if the user's counted rows are still below the maximum (``INSERT ... SELECT ... WHERE (SELECT
count(*) ...) < :maximum``), so the count and the insert cannot be split by another worker's insert:

- SQLite runs a writing statement under its one write lock, taken before the statement reads, so two
  such INSERTs run one after the other and the second counts the first.
- PostgreSQL runs them side by side under READ COMMITTED, each counting without the other's row; a
  transaction-scoped advisory lock on the owner (``pg_advisory_xact_lock``) makes them queue up for
  that one user only, until the first commits. Other users are not held up.

``running_per_user`` is applied by the dispatcher's claim (``queries.next_to_start``), and
``storage_per_user`` by the job service at submission (``JobService.check_storage``).
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass

from sqlalchemy import ColumnElement, bindparam, func, select, text
from sqlalchemy.engine import Connection
from sqlalchemy.sql.dml import Insert

from scheduler import queries
from scheduler.errors import QuotaExceeded
from scheduler.models import JOBS
from scheduler.settings import QuotaSettings

QUEUED = "queued_per_user"
SYNC = "sync_per_user"

# What each quota checked at insertion counts of the user's rows, and how a refusal names them.
_COUNTED: dict[str, tuple[ColumnElement[bool], str]] = {
    QUEUED: (queries.WAITING, "jobs waiting (accepted or queued); try again once some have started"),
    SYNC: (queries.IN_WEB_WORKERS, "synchronous executions running; try again once one has ended"),
}


@dataclass(frozen=True)
class Quota:
    """A limit on how many of one user's rows a quota counts may exist when a job is inserted."""

    name: str  # QUEUED or SYNC: the key in [quotas]
    maximum: int

    def refusal(self) -> QuotaExceeded:
        return QuotaExceeded(self.name, f"you already have {self.maximum} {_COUNTED[self.name][1]}")


def quota(settings: QuotaSettings, name: str) -> Quota | None:
    """The quota ``name`` as configured; None when it is off (0)."""
    maximum = getattr(settings, name)
    return Quota(name, maximum) if maximum else None


@functools.cache
def conditional_insert(name: str) -> Insert:
    """The INSERT of a whole job row that inserts nothing when the owner's rows counted by quota
    ``name`` already reach ``:maximum``. Built once per quota: only parameters change."""
    counted = (
        select(func.count())
        .select_from(JOBS)
        .where(JOBS.c.owner == bindparam("owner"), _COUNTED[name][0])
        .scalar_subquery()
    )
    values = select(*(bindparam(c.name, type_=c.type) for c in JOBS.c)).where(counted < bindparam("maximum"))
    # RETURNING tells whether the row went in: the drivers' rowcount of an INSERT ... SELECT is not reliable.
    return JOBS.insert().from_select([c.name for c in JOBS.c], values).returning(JOBS.c.id)


def lock_owner(conn: Connection, owner: str) -> None:
    """On PostgreSQL, hold the owner's advisory lock until ``conn``'s transaction ends (see above);
    SQLite needs none. The key is 64 bits of a hash of the owner, prefixed so no other user of
    advisory locks in the same database collides with it by accident."""
    if conn.dialect.name != "postgresql":
        return
    digest = hashlib.blake2b(f"hpc-wps quota {owner}".encode(), digest_size=8).digest()
    conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": int.from_bytes(digest, "big", signed=True)})
