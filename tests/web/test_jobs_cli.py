"""``hpc-wps jobs``: the installed console script against a real job table (SQLite and PostgreSQL)
holding jobs the service ran, as an operator runs it."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import subprocess
import sys
from pathlib import Path

from sqlalchemy import update

from scheduler import lifecycle, queries
from scheduler.models import JOBS, utcnow
from tests.conftest import settings_environ, wait_for
from tests.xsd import ROOT, WPS20

HPC_WPS = Path(sys.executable).parent / "hpc-wps"
EXECUTE10 = "/wps?service=WPS&version=1.0.0&request=Execute"
ASYNC = "&storeExecuteResponse=true&status=true"


def jobs(settings, *args: str, code: int = 0) -> str:  # type: ignore[no-untyped-def]
    """Run ``hpc-wps jobs ARGS``; returns its standard output (and error), checking the exit status."""
    done = subprocess.run(
        [str(HPC_WPS), "jobs", *args],
        cwd=ROOT,
        env=settings_environ(settings),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == code, f"exit {done.returncode}\n{done.stdout}\n{done.stderr}"
    return done.stdout + done.stderr


def listed(settings, *args: str) -> list[str]:  # type: ignore[no-untyped-def]
    return [row["id"] for row in json.loads(jobs(settings, "list", "--json", *args))]


def sync_job(wps, engine, query: str) -> str:  # type: ignore[no-untyped-def]
    """Run a synchronous Execute; returns the id of the job it made (the newest row)."""
    assert wps.get(query).status_code in (200, 500)
    with engine.connect() as conn:
        return conn.execute(JOBS.select().order_by(JOBS.c.created_at.desc()).limit(1)).mappings().one()["id"]


def async_job(wps, query: str) -> str:  # type: ignore[no-untyped-def]
    return wps.get(query + ASYNC).xml.get("statusLocation").rsplit("/", 1)[1]


def age(engine, job_id: str, days: float) -> None:  # type: ignore[no-untyped-def]
    with engine.begin() as conn:
        conn.execute(update(JOBS).where(JOBS.c.id == job_id).values(created_at=utcnow() - dt.timedelta(days=days)))


def status20(wps, job_id: str) -> str:  # type: ignore[no-untyped-def]
    root = wps.get(f"/wps?service=WPS&version=2.0.0&request=GetStatus&jobId={job_id}").xml
    return root.findtext(f"{{{WPS20}}}Status")


def make_jobs(wps, engine) -> dict[str, str]:  # type: ignore[no-untyped-def]
    """One job of each kind an operator meets, the first of them three days old."""
    made = {
        "hello": sync_job(wps, engine, f"{EXECUTE10}&identifier=say_hello&DataInputs=name=ops"),
        "failed": sync_job(wps, engine, f"{EXECUTE10}&identifier=fail&DataInputs=message=broken%20on%20purpose"),
        "words": sync_job(
            wps,
            engine,
            f"{EXECUTE10}&identifier=wordcounter&DataInputs=text=a b a&ResponseDocument=output@asReference=true",
        ),
        "waiting": async_job(wps, f"{EXECUTE10}&identifier=sleep&DataInputs=delay=0"),  # no dispatcher: it waits
    }
    age(engine, made["hello"], days=3)
    return made


def test_list_filters_and_json(wps, app, settings):
    made = make_jobs(wps, app.extensions["hpc_wps"].engine)
    table = jobs(settings, "list").splitlines()
    assert table[0].split()[:5] == ["ID", "STATUS", "PROCESS", "EXECUTOR", "CREATED"]
    assert [line.split()[0] for line in table[1:]] == [made["waiting"], made["words"], made["failed"], made["hello"]]
    failed_line = next(line for line in table if line.startswith(made["failed"]))
    assert failed_line.split()[1:4] == ["failed", "fail", "web"] and failed_line.endswith("broken on purpose")

    assert listed(settings, "--status", "failed") == [made["failed"]]
    assert listed(settings, "--status", "active") == [made["waiting"]]
    assert set(listed(settings, "--status", "succeeded,accepted")) == {made["hello"], made["words"], made["waiting"]}
    assert listed(settings, "--process", "say_hello") == [made["hello"]]
    assert listed(settings, "--process", "fail", "--process", "sleep") == [made["waiting"], made["failed"]]
    assert listed(settings, "--older-than", "2d") == [made["hello"]]
    assert listed(settings, "--older-than", "4d") == []
    assert listed(settings, "--older-than", "1h", "--status", "failed") == []
    assert listed(settings, "--limit", "2") == [made["waiting"], made["words"]]
    rows = json.loads(jobs(settings, "list", "--json", "--status", "failed"))
    assert rows[0]["message"] == "broken on purpose" and rows[0]["created_at"].endswith("Z")
    assert "'2x' is not an age" in jobs(settings, "list", "--older-than", "2x", code=2)
    assert "'done' is not a job state" in jobs(settings, "list", "--status", "done", code=2)


def test_show_every_column_paths_and_outputs(wps, app, settings):
    made = make_jobs(wps, app.extensions["hpc_wps"].engine)
    words = made["words"]
    output = settings.jobs_dir / words / "outputs" / "output.json"
    details = json.loads(jobs(settings, "show", "--json", words))
    assert set(details) >= {column.name for column in JOBS.columns} | {"directory", "output_files"}
    assert (details["id"], details["status"], details["process_id"]) == (words, "succeeded", "wordcounter")
    assert details["directory"] == str(settings.jobs_dir / words)
    assert details["output_files"] == [{"id": "output", "path": str(output), "bytes": output.stat().st_size}]
    assert details["request"]["inputs"][0]["id"] == "text"

    text = jobs(settings, "show", words[:8])  # the first characters are enough
    for column in JOBS.columns:
        assert any(line.startswith(column.name) for line in text.splitlines()), column.name
    line = rf"^output output\s+{re.escape(str(output))} \({output.stat().st_size} bytes\)$"
    assert re.search(line, text, re.MULTILINE), text
    assert "no job 00000000" in jobs(settings, "show", "00000000", code=1)
    assert "not a job id" in jobs(settings, "show", "../etc", code=1)


def test_cancel_is_a_dismiss(wps, app, settings, dispatcher):
    """A running job is stopped by the dispatcher and loses its directory; a finished one loses its
    outputs at once; an unknown id is an error, the others are still cancelled."""
    engine = app.extensions["hpc_wps"].engine
    running = async_job(wps, f"{EXECUTE10}&identifier=sleep&DataInputs=delay=60")
    wait_for(lambda: status20(wps, running) == "Running")
    wait_for(lambda: (settings.jobs_dir / running).is_dir())
    words = sync_job(
        wps, engine, f"{EXECUTE10}&identifier=wordcounter&DataInputs=text=a&ResponseDocument=output@asReference=true"
    )
    assert (settings.jobs_dir / words / "outputs").is_dir()
    unknown = "0000dead-0000-4000-8000-000000000000"
    out = jobs(settings, "cancel", running, words, unknown, code=1)
    assert f"{running}: dismissed (was running); the dispatcher stops it" in out
    assert f"{words}: dismissed (was succeeded); its files are removed" in out
    assert f"no job {unknown}" in out
    assert not (settings.jobs_dir / words).exists()
    wait_for(lambda: not queries.get_job(engine, running)["native_active"])
    wait_for(lambda: not (settings.jobs_dir / running).exists())
    for job_id in (running, words):
        assert status20(wps, job_id) == "Dismissed"
        assert queries.get_job(engine, job_id)["message"] == "dismissed by an operator (hpc-wps jobs cancel)"
    assert f"{words}: already dismissed" in jobs(settings, "cancel", words)


def test_purge_finished_jobs_only(wps, app, settings):
    engine = app.extensions["hpc_wps"].engine
    made = make_jobs(wps, engine)
    old_waiting = async_job(wps, f"{EXECUTE10}&identifier=sleep&DataInputs=delay=0")
    age(engine, old_waiting, days=5)
    running = lifecycle.create_job(engine, "sleep", "1.0.0", "sync", {"inputs": []}, executor="web")["id"]
    lifecycle.mark_running(engine, running)
    age(engine, running, days=5)

    assert "say which finished jobs" in jobs(settings, "purge", code=1)
    assert "never accepted, queued, running ones" in jobs(settings, "purge", "--status", "active", code=1)
    preview = jobs(settings, "purge", "--older-than", "1d", "--dry-run")
    assert made["hello"] in preview and old_waiting not in preview and running not in preview
    assert "would purge 1 finished job(s)" in preview
    assert queries.get_job(engine, made["hello"]) is not None

    assert "purged 1 finished job(s)" in jobs(settings, "purge", "--older-than", "1d")
    assert queries.get_job(engine, made["hello"]) is None
    assert "purged 1 finished job(s)" in jobs(settings, "purge", "--process", "wordcounter")
    assert queries.get_job(engine, made["words"]) is None and not (settings.jobs_dir / made["words"]).exists()
    assert queries.get_job(engine, made["failed"]) is not None

    assert "purged 1 finished job(s)" in jobs(settings, "purge", "--all")
    assert sorted(listed(settings)) == sorted([made["waiting"], old_waiting, running])
    assert status20(wps, made["failed"]) is None  # NoSuchJob: the row is gone


def test_missing_database_is_reported_without_creating_one(tmp_path):
    missing = tmp_path / "nowhere" / "jobs.sqlite"
    env = {k: v for k, v in os.environ.items() if not k.startswith("HPC_WPS_")}
    env["HPC_WPS_DATABASE_URL"] = f"sqlite:///{missing}"
    done = subprocess.run([str(HPC_WPS), "jobs", "list"], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and f"there is no job database at {missing}" in done.stderr
    assert not missing.parent.exists()
