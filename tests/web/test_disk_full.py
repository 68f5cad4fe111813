"""A full disk under the job directories (a real 1 MiB tmpfs): the job fails saying the disk is full,
nothing half-written is left or served, and the service goes on answering and running jobs."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from scheduler import queries
from scheduler.executors.local import NATIVE_ID_FILE
from scheduler.launcher import RESULT_FILE
from tests.conftest import wait_for
from tests.tmpfs import fill, mounted_tmpfs
from tests.xsd import OWS11, OWS20, WPS10, WPS20

NS = {"wps": WPS10, "ows": OWS11, "wps2": WPS20, "ows2": OWS20}
EXECUTE10 = "/wps?service=WPS&version=1.0.0&request=Execute"
BIG = f"{EXECUTE10}&identifier=bigoutput&DataInputs=size_mb=5"
WORDCOUNT = f"{EXECUTE10}&identifier=wordcounter&DataInputs=text=a b a&ResponseDocument=output@asReference=true"
ASYNC = "&storeExecuteResponse=true&status=true"
DISK_FULL = "the disk holding the job's files is full (no space left on device)"


@pytest.fixture
def small_disk(settings) -> Iterator[Path]:  # type: ignore[no-untyped-def]
    """The job directories on a 1 MiB filesystem; ask for it before ``dispatcher``, so that the
    dispatcher has stopped when it is unmounted."""
    with mounted_tmpfs(settings.jobs_dir, "1m") as path:
        yield path


def failure_text(document) -> str:  # type: ignore[no-untyped-def]
    failed = document.find(f"{{{WPS10}}}Status/{{{WPS10}}}ProcessFailed")
    assert failed is not None, document
    return failed.findtext(f".//{{{OWS11}}}ExceptionText")


def assert_nothing_half_written(disk: Path) -> None:
    """Failed jobs keep neither outputs nor scratch files, only their few bytes of bookkeeping (the
    result, and which worker ran them)."""
    leftovers = [p for p in disk.rglob("*") if p.is_file()]
    assert all(p.name in (RESULT_FILE, NATIVE_ID_FILE) for p in leftovers), leftovers


def check_serving(wps) -> None:  # type: ignore[no-untyped-def]
    assert wps.get("/wps?service=WPS&request=GetCapabilities").status_code == 200
    assert wps.get("/wps?service=WPS&version=2.0.0&request=DescribeProcess&identifier=bigoutput").status_code == 200


def wordcount_succeeds(wps, job_document) -> None:  # type: ignore[no-untyped-def]
    href = job_document.xpath("//wps:Reference/@href", namespaces=NS)[0]
    assert wps.get(href.removeprefix("http://testserver")).get_json() == {"a": 2, "b": 1}


def test_sync_job_on_a_full_disk_fails_with_the_reason(wps, app, small_disk):
    engine = app.extensions["hpc_wps"].engine
    document = wps.get(BIG)
    assert document.status_code == 200
    assert failure_text(document.xml) == DISK_FULL
    raw = wps.get(f"{BIG}&RawDataOutput=output")
    assert raw.status_code == 500
    exception = raw.xml.find(f"{{{OWS11}}}Exception")
    assert (exception.get("exceptionCode"), exception.findtext(f"{{{OWS11}}}ExceptionText")) == (
        "NoApplicableCode",
        DISK_FULL,
    )
    assert_nothing_half_written(small_disk)
    for job_dir in small_disk.iterdir():
        row = queries.get_job(engine, job_dir.name)
        assert (row["status"], row["message"]) == ("failed", DISK_FULL)
    check_serving(wps)
    wordcount_succeeds(wps, wps.get(WORDCOUNT).xml)


def test_small_job_fails_while_the_disk_is_full_and_succeeds_once_space_is_freed(wps, small_disk):
    filler = fill(small_disk)
    assert failure_text(wps.get(WORDCOUNT).xml) == DISK_FULL
    check_serving(wps)
    filler.unlink()
    wordcount_succeeds(wps, wps.get(WORDCOUNT).xml)


def test_async_job_on_a_full_disk_fails_and_the_next_one_runs(wps, app, small_disk, dispatcher):
    engine = app.extensions["hpc_wps"].engine
    response = wps.get(BIG + ASYNC)
    job_id = response.xml.get("statusLocation").rsplit("/", 1)[1]
    wait_for(lambda: queries.get_job(engine, job_id)["status"] == "failed", timeout=60)
    assert failure_text(wps.get(f"/wps/jobs/{job_id}").xml) == DISK_FULL
    status = wps.get(f"/wps?service=WPS&version=2.0.0&request=GetStatus&jobId={job_id}")
    assert status.xml.findtext(f"{{{WPS20}}}Status") == "Failed"
    result = wps.get(f"/wps?service=WPS&version=2.0.0&request=GetResult&jobId={job_id}")
    assert DISK_FULL in result.xml.findtext(f".//{{{OWS20}}}ExceptionText")
    assert wps.get(f"/wps/jobs/{job_id}/outputs/output.bin").status_code == 404
    wait_for(lambda: not queries.get_job(engine, job_id)["native_active"])
    assert_nothing_half_written(small_disk)
    check_serving(wps)
    later = wps.get(WORDCOUNT + ASYNC).xml.get("statusLocation").rsplit("/", 1)[1]
    wait_for(lambda: queries.get_job(engine, later)["status"] == "succeeded", timeout=60)
    wordcount_succeeds(wps, wps.get(f"/wps/jobs/{later}").xml)


def test_async_job_while_the_disk_is_full_fails_with_the_reason(wps, app, small_disk, dispatcher):
    """Here even the job's result file cannot be written: the job must still end Failed, saying why
    (through the local pool's report of the failure, so in the words of the operating system)."""
    engine = app.extensions["hpc_wps"].engine
    filler = fill(small_disk)
    job_id = wps.get(WORDCOUNT + ASYNC).xml.get("statusLocation").rsplit("/", 1)[1]
    wait_for(lambda: queries.get_job(engine, job_id)["status"] == "failed", timeout=60)
    assert "no space left on device" in failure_text(wps.get(f"/wps/jobs/{job_id}").xml).lower()
    check_serving(wps)
    filler.unlink()
    later = wps.get(WORDCOUNT + ASYNC).xml.get("statusLocation").rsplit("/", 1)[1]
    wait_for(lambda: queries.get_job(engine, later)["status"] == "succeeded", timeout=60)
    wordcount_succeeds(wps, wps.get(f"/wps/jobs/{later}").xml)
