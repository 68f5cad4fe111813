"""Helpers for tests of the production shape, ``hpc-wps serve`` run as a subprocess: the mixed load
driver of ``bench/``, jobs as a client sees them, the job table as the service left it, and the
service's process tree."""

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

import requests
from lxml import etree
from sqlalchemy import select

from scheduler.db import make_engine
from scheduler.models import ACTIVE_STATES, JOBS
from tests.conftest import LiveServer, wait_for
from tests.xsd import OWS11, ROOT, WPS10, validate

NS = {"wps": WPS10, "ows": OWS11}
ASYNC = "storeExecuteResponse=true&status=true"

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


def submit(server: LiveServer, identifier: str, data_inputs: str = "") -> str:
    """A WPS 1.0.0 asynchronous Execute (KVP); the new job's id."""
    inputs = f"&DataInputs={data_inputs}" if data_inputs else ""
    response = requests.get(
        f"{server.url}?service=WPS&version=1.0.0&request=Execute&identifier={identifier}&{ASYNC}{inputs}", timeout=30
    )
    root = validate(response.content)
    assert root.find("wps:Status/wps:ProcessAccepted", NS) is not None, response.text
    return root.get("statusLocation").rsplit("/", 1)[1]


def status(server: LiveServer, job_id: str) -> tuple[str, str]:
    """The 1.0.0 status document of a job: its state (Accepted, Started, Succeeded, Failed) and its text:
    the output of a succeeded job, the exception text of a failed one, the message otherwise."""
    root = validate(requests.get(f"{server.url}/jobs/{job_id}", timeout=30).content)
    state = root.find("wps:Status", NS)[0]
    name = etree.QName(state).localname.removeprefix("Process")
    if name == "Succeeded":
        return name, root.findtext(".//wps:LiteralData", namespaces=NS) or ""
    if name == "Failed":
        return name, state.findtext(".//ows:ExceptionText", namespaces=NS) or ""
    return name, state.text or ""


def wait_until_ended(server: LiveServer, job_ids: list[str], timeout: float) -> dict[str, tuple[str, str]]:
    """Every job's final state and text, once all have ended; fails after ``timeout`` seconds."""
    ended: dict[str, tuple[str, str]] = {}

    def all_ended() -> bool:
        for job_id in job_ids:
            if job_id not in ended:
                state = status(server, job_id)
                if state[0] in ("Succeeded", "Failed"):
                    ended[job_id] = state
        return len(ended) == len(job_ids)

    wait_for(all_ended, timeout=timeout, interval=0.5)
    return ended


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
