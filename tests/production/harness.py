"""Helpers for tests of the production shape, ``hpc-wps serve`` run as a subprocess: the mixed load
driver of ``bench/``, the job table as the service left it, and the service's process tree."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from sqlalchemy import select

from scheduler.db import make_engine
from scheduler.models import ACTIVE_STATES, JOBS
from tests.xsd import ROOT

LOAD_DRIVER = ROOT / "bench" / "load_mixed.py"


def run_mixed_load(url: str, workdir: Path, clients: int, seconds: float, drain: float, log: Path) -> dict[str, Any]:
    """``bench/load_mixed.py`` against ``url``; returns its figures, with its printed table as ``table``.

    It runs as a process of its own, as an operator runs it, so its 50 client threads do not share
    an interpreter with pytest.
    """
    out = workdir / "load.json"
    done = subprocess.run(
        [
            sys.executable,
            str(LOAD_DRIVER),
            f"--url={url}",
            f"--clients={clients}",
            f"--duration={seconds}",
            f"--drain={drain}",
            f"--server-log={log}",
            f"--json={out}",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=seconds + drain + 300,
    )
    print(done.stdout, done.stderr)  # the figures: shown with -s, and with the failure report
    assert out.is_file(), f"the load driver wrote no figures:\n{done.stdout}{done.stderr}"
    report = json.loads(out.read_text(encoding="utf-8"))
    report["table"] = done.stdout
    return report


def unfinished_jobs(database_url: str) -> list[dict[str, Any]]:
    """The jobs the table holds as accepted, queued or running, with what tells why."""
    columns = (JOBS.c.id, JOBS.c.process_id, JOBS.c.status, JOBS.c.executor, JOBS.c.native_id, JOBS.c.message)
    query = select(*columns).where(JOBS.c.status.in_([s.value for s in ACTIVE_STATES]))
    engine = make_engine(database_url)
    try:
        with engine.connect() as conn:
            return [dict(row) for row in conn.execute(query).mappings()]
    finally:
        engine.dispose()


def wait_until_no_job_unfinished(database_url: str, timeout: float) -> None:
    """Wait until every job in the table has ended; fail naming those that have not."""
    deadline = time.monotonic() + timeout
    while (left := unfinished_jobs(database_url)) and time.monotonic() < deadline:
        time.sleep(1.0)
    assert not left, f"jobs unfinished after {timeout} s: {left}"


def children(pid: int) -> list[int]:
    """The direct children of ``pid``, from /proc."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text(encoding="ascii")
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            found.append(int(entry.name))
    return found


def descendants(pid: int) -> list[int]:
    """Every process below ``pid``: children, grandchildren and so on."""
    found, todo = [], [pid]
    while todo:
        for child in children(todo.pop()):
            found.append(child)
            todo.append(child)
    return found


def command_line(pid: int) -> str:
    try:
        return (Path("/proc") / str(pid) / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def kill_everything(pid: int) -> list[int]:
    """SIGKILL ``pid`` and every process below it, as a cgroup kill (or a power cut) would: nothing gets
    to clean up. They are stopped first, until no new one appears, so none can fork its way out.
    Returns the pids killed."""
    stopped: set[int] = set()
    while True:
        tree = {pid, *descendants(pid)} - stopped
        if not tree:
            break
        for target in tree:
            with contextlib.suppress(ProcessLookupError):
                os.kill(target, signal.SIGSTOP)
        stopped |= tree
    for target in stopped:
        with contextlib.suppress(ProcessLookupError):
            os.kill(target, signal.SIGKILL)
    return sorted(stopped)
