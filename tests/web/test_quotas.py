"""Per-user quotas and fair dispatch through the WSGI app, on SQLite and PostgreSQL.

Without authentication every client is the one user ``anonymous``; jobs of other users are
submitted through the job service with their owner, as an authenticated binding does.
"""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from scheduler import lifecycle, queries
from scheduler.access import Caller
from scheduler.errors import QuotaExceeded
from scheduler.executor_names import WEB
from scheduler.models import ANONYMOUS, JOBS, JobStatus
from tests.conftest import settings_environ, wait_for
from tests.xsd import OWS11, OWS20, ROOT, WPS20

ASYNC10 = "/wps?service=WPS&version=1.0.0&request=Execute&identifier=sleep&storeExecuteResponse=true&status=true"
SYNC10 = "/wps?service=WPS&version=1.0.0&request=Execute&identifier=say_hello&DataInputs=name=x"
W2 = 'xmlns:wps="http://www.opengis.net/wps/2.0" xmlns:ows="http://www.opengis.net/ows/2.0"'
REQUEST: dict[str, Any] = {"resources": {}, "inputs": [], "outputs": [], "response": "document"}


def execute20(identifier: str, name: str, value: str, mode: str) -> str:
    return (
        f'<wps:Execute service="WPS" version="2.0.0" mode="{mode}" response="document" {W2}>'
        f'<ows:Identifier>{identifier}</ows:Identifier><wps:Input id="{name}"><wps:Data>'
        f"<wps:LiteralValue>{value}</wps:LiteralValue></wps:Data></wps:Input></wps:Execute>"
    )


def post20(wps, body: str):  # type: ignore[no-untyped-def]
    return wps.post("/wps", data=body, content_type="text/xml")


def refusal(response, ows: str) -> tuple[int, str | None, str | None, str]:  # type: ignore[no-untyped-def]
    exception = response.xml.find(f"{{{ows}}}Exception")
    return response.status_code, exception.get("exceptionCode"), exception.get("locator"), exception.findtext("*")


def quotas(app, **values: int) -> None:  # type: ignore[no-untyped-def]
    service = app.extensions["hpc_wps"]
    service.settings = service.settings.replace("quotas", **values)


def test_queued_per_user_refuses_in_both_versions(app, wps):
    quotas(app, queued_per_user=2)
    assert wps.get(f"{ASYNC10}&DataInputs=delay=0").status_code == 200
    assert post20(wps, execute20("sleep", "delay", "0", "async")).status_code == 200
    status, code, locator, text = refusal(wps.get(f"{ASYNC10}&DataInputs=delay=0"), OWS11)
    assert (status, code, locator) == (429, "ServerBusy", "Execute")
    assert "queued_per_user" in text and "2 jobs waiting" in text
    status, code, locator, text = refusal(post20(wps, execute20("sleep", "delay", "0", "async")), OWS20)
    assert (status, code, locator) == (429, "ServerBusy", "Execute")
    assert "queued_per_user" in text
    # another user's jobs are not counted against the anonymous clients, nor theirs against him
    service = app.extensions["hpc_wps"]
    sleep = service.process("sleep")
    assert service.submit(sleep, "2.0.0", REQUEST, caller=Caller("alice")).owner == "alice"
    engine = service.engine
    with engine.connect() as conn:
        waiting = conn.execute(select(func.count()).select_from(JOBS).where(JOBS.c.owner == ANONYMOUS)).scalar_one()
    assert waiting == 2
    # synchronous executions do not wait: the quota does not apply to them
    assert wps.get(SYNC10).status_code == 200


def test_queued_per_user_holds_when_workers_race(app):
    """Eight threads submit for the same user at once, each through its own connection: the count and
    the insert are one step, so exactly the quota goes in (PostgreSQL: the owner's advisory lock)."""
    quotas(app, queued_per_user=6)
    service = app.extensions["hpc_wps"]
    sleep = service.process("sleep")
    barrier = threading.Barrier(8)
    refused: list[QuotaExceeded] = []

    def submit() -> None:
        barrier.wait()
        for _ in range(3):
            try:
                service.submit(sleep, "2.0.0", REQUEST, caller=Caller("racer"))
            except QuotaExceeded as exc:
                refused.append(exc)

    threads = [threading.Thread(target=submit) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    with service.engine.connect() as conn:
        inserted = conn.execute(select(func.count()).select_from(JOBS).where(JOBS.c.owner == "racer")).scalar_one()
    assert (inserted, len(refused)) == (6, 8 * 3 - 6)


def test_sync_per_user_bounds_executions_in_web_workers(app, wps):
    quotas(app, sync_per_user=1)
    assert wps.get(SYNC10).status_code == 200  # one at a time passes, again and again
    assert wps.get(SYNC10).status_code == 200
    engine = app.extensions["hpc_wps"].engine
    # a synchronous execution of the same user running in another web worker
    other = lifecycle.create_job(engine, "sleep", "1.0.0", "sync", REQUEST, JobStatus.RUNNING, WEB)["id"]
    status, code, _locator, text = refusal(wps.get(SYNC10), OWS11)
    assert (status, code) == (429, "ServerBusy") and "sync_per_user" in text
    status, code, _locator, text = refusal(post20(wps, execute20("say_hello", "name", "x", "sync")), OWS20)
    assert (status, code) == (429, "ServerBusy") and "sync_per_user" in text
    # echo runs its asynchronous jobs in the web worker too (inline_async): they count as well
    status, code, _locator, text = refusal(post20(wps, execute20("echo", "literalInput", "x", "async")), OWS20)
    assert (status, code) == (429, "ServerBusy") and "sync_per_user" in text
    # asynchronous jobs for the dispatcher are not executions in a web worker
    assert wps.get(f"{ASYNC10}&DataInputs=delay=0").status_code == 200
    lifecycle.mark_failed(engine, other, "ended", None)
    assert wps.get(SYNC10).status_code == 200


def test_storage_per_user_refuses_until_finished_jobs_are_dismissed(app, wps, settings):
    response = wps.get("/wps?service=WPS&version=1.0.0&request=Execute&identifier=wordcounter&DataInputs=text=a b a")
    assert response.status_code == 200
    (job_id,) = [path.name for path in settings.jobs_dir.iterdir()]
    (settings.jobs_dir / job_id / "outputs" / "padding.bin").write_bytes(b"x" * 200_000)
    quotas(app, storage_per_user=100_000)
    status, code, _locator, text = refusal(wps.get(SYNC10), OWS11)
    assert (status, code) == (429, "ServerBusy")
    assert "storage_per_user" in text and "dismiss" in text
    status, code, _locator, text = refusal(post20(wps, execute20("sleep", "delay", "0", "async")), OWS20)
    assert (status, code) == (429, "ServerBusy") and "storage_per_user" in text
    dismissed = wps.get(f"/wps?service=WPS&version=2.0.0&request=Dismiss&jobId={job_id}")
    assert dismissed.xml.findtext(f"{{{WPS20}}}Status") == "Dismissed"
    assert wps.get(SYNC10).status_code == 200


def test_dispatcher_starts_another_users_job_at_the_next_free_slot(app, wps, dispatcher):
    """alice has thirty jobs waiting before the anonymous client submits one: with two slots, the
    anonymous job starts in the first round, not after alice's thirty."""
    service = app.extensions["hpc_wps"]
    sleep = service.process("sleep")
    request = REQUEST | {"inputs": [{"id": "delay", "kind": "literal", "value": "0"}]}
    alices = [service.submit(sleep, "2.0.0", request, caller=Caller("alice")).id for _ in range(30)]
    response = post20(wps, execute20("sleep", "delay", "0", "async"))
    anonymous = response.xml.findtext(f"{{{WPS20}}}JobID")
    wait_for(lambda: queries.get_job(service.engine, anonymous)["status"] == "succeeded")
    started = queries.get_job(service.engine, anonymous)["started_at"]
    before = [j for j in alices if (s := queries.get_job(service.engine, j)["started_at"]) and s < started]
    assert len(before) <= 1
    wait_for(lambda: all(queries.get_job(service.engine, j)["status"] == "succeeded" for j in alices), 60)


@pytest.fixture
def capped_dispatcher(settings, tmp_path: Path):  # type: ignore[no-untyped-def]
    """The real dispatcher with ``running_per_user = 1`` and two slots."""
    env = settings_environ(settings) | {"HPC_WPS_QUOTAS_RUNNING_PER_USER": "1", "HPC_WPS_PROCESSING_SLOTS": "2"}
    with (tmp_path / "dispatcher.log").open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "dispatcher"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
        )
        yield process
        process.terminate()
        process.wait(timeout=30)


def test_running_per_user_caps_a_users_jobs_on_the_executor(app, capped_dispatcher):
    """alice's three jobs run one after the other although two slots are free; bob's job runs beside
    hers in the other slot."""
    service = app.extensions["hpc_wps"]
    sleep = service.process("sleep")
    request = REQUEST | {"inputs": [{"id": "delay", "kind": "literal", "value": "0.3"}]}
    alices = [service.submit(sleep, "2.0.0", request, caller=Caller("alice")).id for _ in range(3)]
    bob = service.submit(sleep, "2.0.0", request, caller=Caller("bob")).id
    rows = wait_for(
        lambda: (
            (r := [queries.get_job(service.engine, j) for j in [*alices, bob]])
            and all(row["status"] == "succeeded" for row in r)
            and r
        ),
        60,
    )
    spans = sorted((row["started_at"], row["finished_at"]) for row in rows[:3])
    assert spans[0][1] <= spans[1][0] and spans[1][1] <= spans[2][0]  # never two of alice's at once
    assert rows[3]["started_at"] < spans[0][1]  # bob's started while alice's first ran
