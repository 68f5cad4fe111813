"""The command-line Grid Engine executor without Grid Engine: what ``qsub -terse`` prints, how its
errors are told apart, the argv and script a job gets, and one qstat per poll against fake tools whose
answers were captured from a real Son of Grid Engine 8.1.9. The real thing is tested in
tests/clusters/test_gridengine_cli.py."""

from __future__ import annotations

import shlex
import subprocess
from pathlib import Path

import pytest

from app.settings import load_settings
from scheduler.executors.base import JobSpec, NativeState, NativeStatus, SubmitError
from scheduler.executors.batch.commands import SchedulerUnavailable
from scheduler.executors.batch.gridengine import NO_RECORD, QDEL
from scheduler.executors.batch.gridengine_cli import SCRIPT, GridEngineExecutor, parse_terse
from scheduler.launcher import RESULT_FILE
from scheduler.resources import Resources
from tests.unit.test_drmaa_unit import QSTAT_XML_EMPTY, qacct_record
from tests.unit.test_slurm_unit import PRINT_JOB_DIR, launcher_dir, specs
from tests.unit.test_slurm_unit import FakeSlurm as FakeTools

JOB_ID = "039a0a55-cd6a-4c30-b894-2dfe6a5f30eb"
GiB = 1024**3

# qstat -xml -u root with job 12 running and 13 waiting, as 8.1.9 prints it (trimmed to what is read).
QSTAT_XML = """<?xml version='1.0'?>
<job_info  xmlns:xsd="http://arc.liv.ac.uk/repos/darcs/sge/source/dist/util/resources/schemas/qstat/qstat.xsd">
  <queue_info>
    <job_list state="running">
      <JB_job_number>12</JB_job_number>
      <JB_name>wps-039a0a55-cd6a-4c30-b894-2dfe6a5f30eb</JB_name>
      <state>r</state>
    </job_list>
  </queue_info>
  <job_info>
    <job_list state="pending">
      <JB_job_number>13</JB_job_number>
      <JB_name>wps-other</JB_name>
      <state>qw</state>
    </job_list>
  </job_info>
</job_info>
"""


class FakeGridEngine(FakeTools):
    """Answers by the whole command first ("qacct -j 25"); qacct of any other job finds no record."""

    def run(self, argv, **kwargs):  # type: ignore[no-untyped-def]
        key = " ".join(argv)
        if key in self.answers or argv[0] == "qacct":
            self.calls.append(list(argv))
            if key in self.answers:
                return subprocess.CompletedProcess(argv, 0, self.answers[key][0], "")
            return subprocess.CompletedProcess(argv, 1, "", f"error: job id {argv[-1]} not found\n")
        return super().run(argv, **kwargs)


def executor(tmp_path: Path, **scheduler: object) -> GridEngineExecutor:
    settings = load_settings(environ={}).replace("scheduler", system="gridengine", **scheduler)
    return GridEngineExecutor(settings.scheduler, tmp_path)


def spec(job_dir: Path, resources: Resources | None = None) -> JobSpec:
    job_dir.mkdir(parents=True, exist_ok=True)
    return JobSpec(JOB_ID, "sleep", job_dir, {}, resources)


# -- qsub -terse --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("output", "number"),
    [("12\n", "12"), ("  7  \n\n", "7"), ("40.1-10:1\n", "40"), ("warning: x\n13\n", "13")],
)
def test_terse_output(output: str, number: str):
    assert parse_terse(output) == number


@pytest.mark.parametrize("output", ["", "\n", 'Your job 12 ("x") has been submitted\n', "12.abc\n", "-1\n"])
def test_terse_output_without_a_number(output: str):
    with pytest.raises(ValueError, match="instead of a job number"):
        parse_terse(output)


# -- what a job gets ----------------------------------------------------------------------------------


def test_qsub_argv_names_the_job_its_files_and_the_drmaa_options(tmp_path):
    job_dir = tmp_path / "dir with spaces 'q' $HOME"
    resources = Resources(4, 2 * GiB, 90, queue="short", native="-l arch=lx-amd64", account="proj-a", qos="high")
    argv = executor(tmp_path, parallel_environment="threaded").qsub_command(spec(job_dir, resources))
    assert argv[:2] == ["qsub", "-terse"]
    assert argv[argv.index("-N") + 1] == f"wps-{JOB_ID}"
    assert argv[argv.index("-wd") + 1] == str(job_dir)
    assert argv[argv.index("-o") + 1] == f":{job_dir}/stdout"
    assert argv[argv.index("-e") + 1] == f":{job_dir}/stderr"
    assert argv[argv.index("-r") + 1] == "n"  # never run twice
    # The DRMAA executor's native specification, word for word: h_vmem per slot, project, no QoS.
    assert argv[argv.index("-r") + 2 : -1] == (
        [
            "-l",
            "h_rt=0:01:30",
            "-l",
            "h_vmem=512M",
            "-pe",
            "threaded",
            "4",
            "-q",
            "short",
            "-P",
            "proj-a",
            "-l",
            "arch=lx-amd64",
        ]
    )
    assert argv[-1] == f"{job_dir}/{SCRIPT}"


def test_the_script_runs_the_launcher_with_the_dispatchers_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", "/opt/a b/bin:/usr/bin")
    monkeypatch.setenv("SECRET_TOKEN", "never passed on")
    job_dir = tmp_path / "a 'b'"
    script = executor(tmp_path, python="'/opt/py thon/bin/python' -X dev").render_script(spec(job_dir))
    lines = script.splitlines()
    assert "export PATH='/opt/a b/bin:/usr/bin'" in lines
    assert not any("SECRET" in line for line in lines)
    assert not any(line.startswith("#$") for line in lines)  # options are argv, never Grid Engine's parser's
    command = shlex.split(lines[-1])
    assert command == ["exec", "/opt/py thon/bin/python", "-X", "dev", "-m", "scheduler.run_job", str(job_dir)]


def test_bad_native_options_refuse_the_job_without_retry(tmp_path, monkeypatch):
    fake = FakeTools(monkeypatch)
    with pytest.raises(SubmitError) as refused:
        executor(tmp_path, native="-l 'unclosed").submit(spec(tmp_path / "j"))
    assert refused.value.retry is False and "native Grid Engine options" in str(refused.value)
    assert fake.calls == []
    assert not (tmp_path / "j" / "batch.submitted").exists()


# -- submitting against fake tools ---------------------------------------------------------------------


def test_submit_runs_qsub_on_the_written_script(tmp_path, monkeypatch):
    fake = FakeTools(monkeypatch)
    fake.answer("qsub", (0, "12\n", ""))
    job = spec(tmp_path / "j")
    assert executor(tmp_path).submit(job) == "12"
    assert fake.calls[0][-1] == str(job.job_dir / SCRIPT)
    assert (job.job_dir / SCRIPT).read_text().startswith("#!/bin/sh\n")
    assert (job.job_dir / "batch.submitted").read_text() == "12"


@pytest.mark.parametrize(
    ("stderr", "retry", "words"),
    [  # qsub's messages, as 8.1.9 prints them
        (
            'Unable to run job: job rejected: the requested project "proj-x" does not exist.\nExiting.\n',
            False,
            'Grid Engine refused the job: job rejected: the requested project "proj-x" does not exist.',
        ),
        ('Unable to run job: attribute "h_rt" is not a time value\nExiting.\n', False, "is not a time value"),
        (
            "error: commlib error: got select error (Connection refused)\n"
            'Unable to run job: unable to send message to qmaster using port 6444 on host "localhost": got send'
            " error\nExiting.\n",
            True,
            "Grid Engine is unavailable: error: commlib error",
        ),
        ("something new\n", True, "qsub failed: something new"),
    ],
)
def test_submission_failures(tmp_path, monkeypatch, stderr, retry, words):
    FakeTools(monkeypatch).answer("qsub", (1, "", stderr))
    with pytest.raises(SubmitError) as failed:
        executor(tmp_path).submit(spec(tmp_path / "j"))
    assert failed.value.retry is retry
    assert words in str(failed.value)


def test_an_uncertain_submission_is_looked_for_before_it_is_sent_again(tmp_path, monkeypatch):
    fake = FakeTools(monkeypatch)
    fake.answer("qsub", subprocess.TimeoutExpired("qsub", 30))
    fake.answer("qstat", (0, QSTAT_XML, ""))
    grid = executor(tmp_path)
    job = spec(tmp_path / "j")
    with pytest.raises(SchedulerUnavailable):
        grid.submit(job)
    assert grid.submit(job) == "12"  # found by its name in qstat: not submitted twice
    assert fake.names() == ["qsub", "qstat"]


def test_a_job_that_ran_while_the_dispatcher_was_away_is_found_in_accounting(tmp_path, monkeypatch):
    fake = FakeTools(monkeypatch)
    fake.answer("qstat", (0, QSTAT_XML_EMPTY, ""))
    fake.answer("qacct", (0, qacct_record("29").replace("jobname      probe", f"jobname      wps-{JOB_ID}"), ""))
    job = spec(tmp_path / "j")
    (job.job_dir / "batch.submitted").write_text("")  # an earlier submission whose outcome is unknown
    assert executor(tmp_path).submit(job) == "29"
    assert fake.calls[1] == ["qacct", "-j", f"wps-{JOB_ID}"]


# -- following against fake tools ---------------------------------------------------------------------


def test_one_qstat_for_all_jobs_and_results_where_shared(tmp_path, monkeypatch):
    fake = FakeTools(monkeypatch)
    fake.answer("qstat", (0, QSTAT_XML, ""))
    grid = executor(tmp_path)
    assert grid.poll_many(["12", "13"]) == {
        "12": NativeStatus(NativeState.RUNNING),
        "13": NativeStatus(NativeState.QUEUED),
    }
    assert fake.calls == [["qstat", "-xml", "-u", grid.user]]
    # Job 12 has left qstat with its result file: no accounting is asked.
    (tmp_path / JOB_ID).mkdir()
    (tmp_path / JOB_ID / RESULT_FILE).write_text('{"status": "succeeded", "message": ""}')
    fake.answers["qstat"] = [(0, QSTAT_XML_EMPTY, "")]
    assert grid.poll_many(["12"]) == {"12": NativeStatus(NativeState.ENDED, "ended on Grid Engine")}
    assert fake.names() == ["qstat", "qstat"]


def test_ended_jobs_from_accounting_with_their_reasons(tmp_path, monkeypatch):
    fake = FakeGridEngine(monkeypatch)
    fake.answer("qstat", (0, QSTAT_XML_EMPTY, ""))
    deleted = qacct_record("29").replace("exit_status  143                  (Terminated)", "exit_status  137")
    for number, record in {"25": qacct_record("25"), "29": deleted}.items():
        fake.answers[f"qacct -j {number}"] = [record.replace("jobname      probe", "jobname      wps-x")]
    assert executor(tmp_path).poll_many(["25", "29", "31"]) == {
        "25": NativeStatus(NativeState.ENDED, "exceeded its wall-clock limit (h_rt) on Grid Engine"),
        "29": NativeStatus(NativeState.ENDED, QDEL),
    }  # 31: no record yet (accounting_flush_time): asked again, until the grace runs out


def test_a_job_without_any_record_ends_after_the_grace(tmp_path, monkeypatch):
    FakeGridEngine(monkeypatch).answer("qstat", (0, QSTAT_XML_EMPTY, ""))
    monkeypatch.setattr("scheduler.executors.batch.base.VANISH_GRACE", 0.0)
    assert executor(tmp_path).poll_many(["31"]) == {"31": NativeStatus(NativeState.ENDED, NO_RECORD)}


def test_accounting_lookups_per_poll_are_bounded(tmp_path, monkeypatch):
    fake = FakeGridEngine(monkeypatch)
    fake.answer("qstat", (0, QSTAT_XML_EMPTY, ""))
    grid = executor(tmp_path)
    ids = [str(n) for n in range(500, 510)]
    assert grid.poll_many(ids) == {}  # no records yet, within the grace
    assert fake.names() == ["qstat", "qacct", "qacct", "qacct", "qacct"]  # the rest wait for later polls


def test_cancel_is_qdel_and_an_ended_job_is_ignored(tmp_path, monkeypatch):
    fake = FakeTools(monkeypatch)
    fake.answer("qdel", (1, "", 'denied: job "99" does not exist\n'))
    grid = executor(tmp_path)
    assert grid.request_cancel("99") is True
    assert fake.calls == [["qdel", "99"]]


# -- task arrays --------------------------------------------------------------------------------------

# qstat -xml -u root with task 1 of array 40 running and its tasks 2 and 3 waiting (one entry for both).
QSTAT_XML_ARRAY = """<?xml version='1.0'?>
<job_info  xmlns:xsd="http://arc.liv.ac.uk/repos/darcs/sge/source/dist/util/resources/schemas/qstat/qstat.xsd">
  <queue_info>
    <job_list state="running">
      <JB_job_number>40</JB_job_number>
      <JB_name>wps-{name}</JB_name>
      <state>r</state>
      <tasks>1</tasks>
    </job_list>
  </queue_info>
  <job_info>
    <job_list state="pending">
      <JB_job_number>40</JB_job_number>
      <JB_name>wps-{name}</JB_name>
      <state>qw</state>
      <tasks>2-3:1</tasks>
    </job_list>
  </job_info>
</job_info>
"""


def submitted_array(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, count: int = 3) -> tuple[FakeGridEngine, list]:
    fake = FakeGridEngine(monkeypatch)
    fake.answer("qsub", (0, f"40.1-{count}:1\n", ""))
    jobs = specs(tmp_path, count)
    assert list(executor(tmp_path).submit_many(jobs)) == [f"40.{task}" for task in range(1, count + 1)]
    return fake, jobs


def test_jobs_of_one_cycle_go_as_one_task_array(tmp_path, monkeypatch):
    fake, jobs = submitted_array(tmp_path, monkeypatch)
    (argv,) = fake.calls  # one qsub for the three
    batch = Path(argv[-1]).parent
    assert batch.parent == tmp_path / "arrays" and argv[-1] == f"{batch}/{SCRIPT}"
    assert argv[argv.index("-t") + 1] == "1-3"
    assert argv[argv.index("-N") + 1] == f"wps-{batch.name}"
    assert argv[argv.index("-wd") + 1] == str(batch)
    assert argv[argv.index("-o") + 1] == f":{batch}/$TASK_ID/stdout"  # Grid Engine's pseudo variable
    assert argv[argv.index("-e") + 1] == f":{batch}/$TASK_ID/stderr"
    assert argv[argv.index("-r") + 1] == "n"
    for task, job in enumerate(jobs, 1):
        assert (batch / str(task)).resolve() == job.job_dir
        assert (job.job_dir / "batch.submitted").read_text() == f"40.{task}"
    assert Path(argv[-1]).read_text().rstrip().endswith('-m scheduler.run_job "$SGE_TASK_ID"')


def test_a_task_runs_the_launcher_in_its_own_job_directory(tmp_path, monkeypatch):
    """The array's script as the shell runs it for task 2: the launcher gets the link to job 2's directory."""
    fake = FakeGridEngine(monkeypatch)
    fake.answer("qsub", (0, "40.1-2:1\n", ""))
    jobs = specs(tmp_path, 2)
    list(executor(tmp_path, python=PRINT_JOB_DIR).submit_many(jobs))
    assert launcher_dir(Path(fake.calls[0][-1]), {"SGE_TASK_ID": "2"}) == str(jobs[1].job_dir)


def test_jobs_asking_for_other_resources_or_staged_go_alone(tmp_path, monkeypatch):
    fake = FakeGridEngine(monkeypatch)
    fake.answer("qsub", (0, "40.1-2:1\n", ""), (0, "41\n", ""), (0, "42\n", ""), (0, "43\n", ""))
    jobs = specs(tmp_path, 3)
    jobs[1] = JobSpec(jobs[1].job_id, "sleep", jobs[1].job_dir, {}, Resources(1, GiB, 60))
    grid = executor(tmp_path)
    assert list(grid.submit_many(jobs)) == ["40.1", "41", "40.2"]
    monkeypatch.setattr(grid.runner, "shared", False)  # staging = sftp: the nodes cannot see the links
    (tmp_path / "staged").mkdir()
    assert list(grid.submit_many(specs(tmp_path / "staged", 2))) == ["42", "43"]
    assert ["-t" in argv for argv in fake.calls] == [True, False, False, False]


def test_tasks_are_followed_by_one_qstat_and_their_directories_known_after_a_restart(tmp_path, monkeypatch):
    fake, jobs = submitted_array(tmp_path, monkeypatch)
    batch = next((tmp_path / "arrays").iterdir())
    fake.answer("qstat", (0, QSTAT_XML_ARRAY.format(name=batch.name), ""), (0, QSTAT_XML_EMPTY, ""))
    grid = executor(tmp_path)  # a restarted dispatcher: it knows the tasks by their ids only
    ids = ["40.1", "40.2", "40.3"]
    assert grid.poll_many(ids) == {
        "40.1": NativeStatus(NativeState.RUNNING),
        "40.2": NativeStatus(NativeState.QUEUED),
        "40.3": NativeStatus(NativeState.QUEUED),
    }
    # Task 1 has left qstat with its result file in its job directory, found from the array's name.
    (jobs[0].job_dir / RESULT_FILE).write_text('{"status": "succeeded", "message": ""}')
    assert grid.poll_many(ids[:1]) == {"40.1": NativeStatus(NativeState.ENDED, "ended on Grid Engine")}
    assert fake.names()[1:] == ["qstat", "qstat"]


def test_an_ended_task_from_its_own_accounting_record(tmp_path, monkeypatch):
    fake = FakeGridEngine(monkeypatch)
    fake.answer("qstat", (0, QSTAT_XML_EMPTY, ""))
    deleted = qacct_record("29").replace("exit_status  143                  (Terminated)", "exit_status  137")
    fake.answers["qacct -j 40 -t 2"] = [deleted.replace("jobname      probe", "jobname      wps-0123")]
    assert executor(tmp_path).poll_many(["40.2"]) == {"40.2": NativeStatus(NativeState.ENDED, QDEL)}
    assert fake.calls[1] == ["qacct", "-j", "40", "-t", "2"]


def test_cancelling_a_task_deletes_that_task_only(tmp_path, monkeypatch):
    fake = FakeTools(monkeypatch)
    assert executor(tmp_path).request_cancel("40.2") is True
    assert fake.calls == [["qdel", "40", "-t", "2"]]


def test_a_task_whose_array_answer_was_lost_is_found_not_submitted_again(tmp_path, monkeypatch):
    fake = FakeGridEngine(monkeypatch)
    fake.answer("qsub", subprocess.TimeoutExpired("qsub", 30))
    jobs = specs(tmp_path, 3)
    assert all(isinstance(r, SubmitError) and r.retry for r in executor(tmp_path).submit_many(jobs))
    batch = next((tmp_path / "arrays").iterdir())
    fake.answer("qstat", (0, QSTAT_XML_ARRAY.format(name=batch.name), ""))
    assert list(executor(tmp_path).submit_many(jobs[1:])) == ["40.2", "40.3"]  # a restarted dispatcher
    assert fake.names() == ["qsub", "qstat", "qstat"]


def test_a_task_array_that_ran_while_the_dispatcher_was_away_is_found_in_accounting(tmp_path, monkeypatch):
    fake = FakeGridEngine(monkeypatch)
    fake.answer("qsub", subprocess.TimeoutExpired("qsub", 30))
    jobs = specs(tmp_path, 2)
    list(executor(tmp_path).submit_many(jobs))
    batch = next((tmp_path / "arrays").iterdir())
    fake.answer("qstat", (0, QSTAT_XML_EMPTY, ""))
    fake.answers[f"qacct -j wps-{batch.name}"] = [
        qacct_record("25").replace("jobname      probe", f"jobname      wps-{batch.name}")
    ]
    assert list(executor(tmp_path).submit_many(jobs[1:])) == ["25.2"]
