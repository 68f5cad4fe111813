"""Whose allocation a batch job is charged to: the ``[accounts]`` section, in no protocol.

Centres charge compute to projects: a Slurm ``--account`` (with its ``--qos``), a Grid Engine project
(``-P``). The section maps a user, or a role (``role.<name>``), to the accounts it may charge, the
first being its default; a request may name one of them (``resources.account``). The job service
settles the account as the job is submitted (:meth:`AccountMap.choose`), so an account the caller may
not use is refused before a job exists, and the one chosen is stored with the job's resources.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from scheduler.access import Caller
from scheduler.models import ANONYMOUS

ROLE_PREFIX = "role."  # [accounts] role.<role> = ...
QOS_PREFIX = "qos="  # [accounts] alice = proj-a qos=high
# What every batch system takes as an account, project or QoS name, and nothing a shell or an option parser reads.
_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")


def parse_account_name(text: str) -> str:
    """An account, project or QoS name: one word of letters, digits, ``_ . -``; empty is none."""
    value = text.strip()
    if value and not _NAME.fullmatch(value):
        raise ValueError(f"{value!r} is not one word of letters, digits, '_', '.' and '-'")
    return value


@dataclass(frozen=True)
class Account:
    """An account a job is charged to, and the quality of service it runs with there (Slurm only)."""

    name: str
    qos: str = ""


def parse_accounts_value(text: str) -> tuple[Account, ...]:
    """``proj-a qos=high, proj-b``: the accounts of one user or role, its default first."""
    accounts = []
    for item in text.split(","):
        words = item.split()
        if not words:
            continue
        qos = [word.removeprefix(QOS_PREFIX) for word in words[1:] if word.startswith(QOS_PREFIX)]
        if len(words) - 1 != len(qos) or len(qos) > 1 or (qos and not qos[0]):
            raise ValueError(f"{item.strip()!r} is not an account, or an account and qos=NAME")
        accounts.append(Account(parse_account_name(words[0]), parse_account_name(qos[0]) if qos else ""))
    if not accounts:
        raise ValueError("give at least one account")
    return tuple(accounts)


def _merged(lists: Iterable[tuple[Account, ...]]) -> tuple[Account, ...]:
    """The accounts of several lists in order, each name once (its first QoS wins)."""
    seen: dict[str, Account] = {}
    for accounts in lists:
        for account in accounts:
            seen.setdefault(account.name, account)
    return tuple(seen.values())


@dataclass(frozen=True)
class AccountMap:
    """The ``[accounts]`` section: users' and roles' accounts, the roles in the order they are written,
    which decides the default of a user with no accounts of its own but several roles that have some."""

    users: Mapping[str, tuple[Account, ...]] = field(default_factory=dict)
    roles: Mapping[str, tuple[Account, ...]] = field(default_factory=dict)

    @classmethod
    def parse(cls, entries: Mapping[str, str]) -> AccountMap:
        """``<user> = accounts`` and ``role.<role> = accounts``; ValueError naming the key otherwise."""
        users: dict[str, tuple[Account, ...]] = {}
        roles: dict[str, tuple[Account, ...]] = {}
        for key, text in entries.items():
            role = key.removeprefix(ROLE_PREFIX)
            if not role or key == ANONYMOUS:
                raise ValueError(
                    f"{key}: keys are user names or {ROLE_PREFIX}<role>; anonymous callers get the default"
                )
            try:
                accounts = parse_accounts_value(text)
            except ValueError as exc:
                raise ValueError(f"{key}: {exc}") from None
            (roles if key.startswith(ROLE_PREFIX) else users)[role] = accounts
        return cls(users, roles)

    def allowed(self, caller: Caller, default: Account) -> tuple[Account, ...]:
        """The accounts ``caller`` may charge, its default first: its own, then its roles', else
        ``default`` (``[scheduler] account``) alone, which is also all an anonymous caller gets."""
        if caller.name != ANONYMOUS:
            own = self.users.get(caller.name, ())
            accounts = _merged([own, *(a for role, a in self.roles.items() if role in caller.roles)])
            if accounts:
                return accounts
        return (default,) if default.name else ()

    def choose(self, caller: Caller, requested: str | None, default: Account) -> Account | None:
        """The account a job of ``caller`` is charged to: ``requested`` if the caller may charge it,
        else its default (None: the system's own default); ValueError for an account not its own."""
        allowed = self.allowed(caller, default)
        if requested is None:
            return allowed[0] if allowed else None
        for account in allowed:
            if account.name == requested:
                return account
        yours = ", ".join(a.name for a in allowed) or "none but the batch system's default"
        raise ValueError(f"account {requested!r} is not one you may charge; yours: {yours}")
