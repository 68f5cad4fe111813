"""Who asks, and which processes they may use: the job service's part of users, in no protocol.

A protocol binding authenticates a request its own way (``app/auth/``) and hands the job service a
:class:`Caller`; every job operation takes one, so the rules below hold for any binding. A caller sees
only its own jobs (an administrator sees every job), and only the processes its roles open.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from scheduler.models import ANONYMOUS

ROLES_SUFFIX = ".roles"  # [processes] <id>.roles


@dataclass(frozen=True)
class Caller:
    """The user a request comes from: its name is the owner recorded on the jobs it submits."""

    name: str
    roles: frozenset[str] = frozenset()
    is_admin: bool = False  # sees and dismisses every job, uses every process

    def owns(self, owner: str) -> bool:
        return self.is_admin or owner == self.name


ANONYMOUS_CALLER = Caller(ANONYMOUS)  # no authentication, or an operation allowed without it


def parse_process_roles(entries: Mapping[str, str]) -> dict[str, frozenset[str]]:
    """``[processes]`` keys ``<process id>.roles = a, b`` as process id -> roles; ValueError naming
    the key for anything else, so a typo never leaves a process open by accident."""
    roles: dict[str, frozenset[str]] = {}
    for key, text in entries.items():
        identifier = key.removesuffix(ROLES_SUFFIX)
        if not key.endswith(ROLES_SUFFIX) or not identifier:
            raise ValueError(f"{key}: keys of this section are <process id>{ROLES_SUFFIX}")
        names = frozenset(part.strip() for part in text.split(",") if part.strip())
        if not names:
            raise ValueError(f"{key}: give at least one role")
        roles[identifier] = names
    return roles


@dataclass(frozen=True)
class ProcessAccess:
    """The ``[processes]`` section: the roles that open a process; a process not named is open to all."""

    roles: Mapping[str, frozenset[str]] = field(default_factory=dict)

    def allows(self, caller: Caller, identifier: str) -> bool:
        needed = self.roles.get(identifier)
        return needed is None or caller.is_admin or not needed.isdisjoint(caller.roles)
