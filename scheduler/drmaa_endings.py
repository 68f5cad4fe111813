"""Why a DRMAA job ended, in words a client can read: from the JobInfo a DRMAA session's ``wait``
returns (exit status, signal, abort, resource usage) and, for jobs a session does not know, from Grid
Engine's accounting (``qacct -j``). Reasons are worded to follow "the job's process ", which is how
the dispatcher reports a job that ended without a result.
"""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Mapping
from typing import Any

from scheduler.drm_listing import GRID_ENGINE
from scheduler.executors.base import NativeState, NativeStatus


def _signal_name(value: str | int) -> str:
    if isinstance(value, int) or str(value).isdigit():
        with contextlib.suppress(ValueError):
            return signal.Signals(int(value)).name
        return f"signal {value}"
    return str(value)


def h_rt_reason(system: str = GRID_ENGINE) -> str:
    limit = " (h_rt)" if system == GRID_ENGINE else ""
    return f"exceeded its wall-clock limit{limit} on {system}"


def deleted_reason(system: str = GRID_ENGINE, started: bool = True) -> str:
    command = " (qdel)" if system == GRID_ENGINE else ""
    return f"was deleted on {system}{command}" + ("" if started else " before it started")


def reason_from_job_info(info: Any, walltime: float | None, system: str = GRID_ENGINE) -> str:
    """Why a job ended, from DRMAA's JobInfo (exit, signal or abort) and its resource usage.

    Grid Engine kills a job over its h_rt with SIGKILL and reports no more than the signal: a SIGKILL
    after at least the requested wall-clock time is taken for the limit.
    """
    usage = info.resourceUsage or {}
    if info.hasExited:
        return f"exited with code {info.exitStatus} on {system}"
    if info.hasSignal:
        name = _signal_name(info.terminatedSignal)
        if name == "SIGKILL" and walltime and _wallclock(usage) >= max(1.0, walltime - 1.0):
            return h_rt_reason(system)
        return f"was killed by {name} on {system}"
    if info.wasAborted:
        return deleted_reason(system, started="start_time" in usage or "exit_status" in usage)
    return f"ended on {system} without an exit status"


def _wallclock(usage: Mapping[str, str]) -> float:
    def number(key: str) -> float:
        try:
            return float(usage.get(key, 0.0))
        except ValueError:
            return 0.0

    return max(number("ru_wallclock"), number("end_time") - number("start_time"))


def parse_qacct(text: str) -> list[dict[str, str]]:
    """``qacct -j``: one dict per accounting record (a job number may repeat after a qmaster crash)."""
    records: list[dict[str, str]] = []
    current: dict[str, str] | None = None
    for line in text.splitlines():
        if line.startswith("====="):
            current = {}
            records.append(current)
            continue
        if current is None or not line.strip():
            continue
        key, _, value = line.partition(" ")
        current[key] = value.strip()
    return [r for r in records if r]


def status_from_qacct(record: Mapping[str, str]) -> NativeStatus:
    """An ended job's reason from its accounting record (``failed`` and ``exit_status``)."""
    failed_text = record.get("failed", "0")
    code_text, _, why = failed_text.partition(":")
    try:
        failed = int(code_text.strip() or 0)
    except ValueError:
        failed = -1
    why = why.strip()
    try:
        exit_status = int(record.get("exit_status", "0").split()[0])
    except (ValueError, IndexError):
        exit_status = 0
    if failed == 37 and "h_rt" in why:  # the qmaster enforced the limit, with SIGKILL
        return NativeStatus(NativeState.ENDED, h_rt_reason())
    if failed == 0:
        return NativeStatus(NativeState.ENDED, f"exited with code {exit_status} on {GRID_ENGINE}")
    if failed == 100 and exit_status > 128:  # ended by a signal: qdel, a limit enforced on the node, kill
        name = _signal_name(exit_status - 128)
        return NativeStatus(NativeState.ENDED, f"was killed by {name} on {GRID_ENGINE} (deleted, or over a limit)")
    if record.get("start_time", "-/-") in ("-/-", ""):
        return NativeStatus(NativeState.ENDED, f"could not be started by {GRID_ENGINE}: {why} (failed {failed})")
    return NativeStatus(
        NativeState.ENDED, f"failed on {GRID_ENGINE}: {why} (failed {failed}, exit status {exit_status})"
    )
