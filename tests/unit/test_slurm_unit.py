"""The Slurm executor without Slurm: submit scripts as Slurm's parser and the shell read them, squeue
and sacct outputs (captured from a real Slurm 22.05) as states and reasons, and the executor's
commands against a fake set of Slurm tools."""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from app.settings import load_settings
from scheduler.executors.base import PER_CYCLE, JobSpec, NativeState, NativeStatus, SubmitError
from scheduler.executors.batch import base as batch
from scheduler.executors.batch.slurm import (
    _STATE_MAP,
    SQUEUE_FIELDS,
    SlurmExecutor,
    exit_status,
    hms,
    parse_sacct,
    parse_squeue,
    sbatch_quote,
    task_id,
)
from scheduler.resources import Resources

QUEUED, RUNNING, ENDED = NativeState.QUEUED, NativeState.RUNNING, NativeState.ENDED
JOB_ID = "039a0a55-cd6a-4c30-b894-2dfe6a5f30eb"
NASTY = "dir with spaces 'single' \"double\" #hash %j $HOME `tick` ;&|*?"


def executor(tmp_path: Path, **scheduler: object) -> SlurmExecutor:
    settings = load_settings(environ={}).replace("scheduler", **scheduler)
    return SlurmExecutor(settings.scheduler, tmp_path)


def spec(job_dir: Path, resources: Resources | None = None) -> JobSpec:
    job_dir.mkdir(parents=True, exist_ok=True)
    return JobSpec(JOB_ID, "sleep", job_dir, {}, resources)


def sbatch_options(script: str) -> list[str]:
    """The options of a script's #SBATCH lines as Slurm reads them (sbatch's _get_argument): words
    split at blanks, double quotes group, a backslash escapes the next character, an unquoted ``#``
    ends the line, single quotes are ordinary characters; parsing stops at the first command."""
    options = []
    for line in script.splitlines()[1:]:
        if not line.strip():
            continue
        if not line.startswith("#"):
            break
        if not line.startswith("#SBATCH"):
            continue
        word, quoted, escaped, started = [], False, False, False
        for char in line[len("#SBATCH") :] + " ":
            if escaped:
                word.append(char)
                escaped = False
            elif char == "\\":
                escaped = started = True
            elif char == '"':
                quoted, started = not quoted, True
            elif char == "#" and not quoted:
                break
            elif char.isspace() and not quoted:
                if started:
                    options.append("".join(word))
                word, started = [], False
            else:
                word.append(char)
                started = True
        assert not quoted, f"unbalanced quotes in {line!r}"
    return options


RESOURCES = [
    pytest.param(None, "", id="defaults"),
    pytest.param(Resources(2, 3 * 1024**3 + 1, 61.2, "debug"), "", id="partition"),
    pytest.param(Resources(1, 512 * 1024**2, 86400, NASTY), "", id="nasty-queue"),
    pytest.param(Resources(4, 1024**3, 7200, "", "--qos=high --comment='two words' -A acct"), "", id="native"),
    pytest.param(Resources(1, 1024**3, 30), NASTY, id="nasty-job-dir"),
]


@pytest.mark.parametrize(("resources", "subdir"), RESOURCES)
def test_script_values_reach_slurm_and_the_shell_unchanged(tmp_path, resources, subdir):
    job_dir = tmp_path / subdir / JOB_ID
    slurm = executor(tmp_path, python=f"{sys.executable} -c 'import json, sys; print(json.dumps(sys.argv[1:]))'")
    script = slurm.render_script(spec(job_dir, resources))
    expected = resources or Resources(1, 1024**3, 3600.0)
    logs = str(job_dir).replace("%", "%%")
    wanted = [
        f"--job-name=hpc-wps-{JOB_ID[:8]}",
        f"--chdir={job_dir}",
        f"--output={logs}/slurm-%j.out",
        f"--error={logs}/slurm-%j.err",
        "--nodes=1",
        "--ntasks=1",
        f"--cpus-per-task={expected.cores}",
        f"--mem={expected.memory_mb}M",
        f"--time={expected.walltime_hms}",
        "--no-requeue",
    ]
    if expected.queue:
        wanted.append(f"--partition={expected.queue}")
    wanted += shlex.split(expected.native)
    assert sbatch_options(script) == wanted
    # The shell runs the command with the job directory as one word, whatever it holds.
    run = subprocess.run(["sh", str(_write(tmp_path / "job.sh", script))], capture_output=True, text=True, check=True)
    assert json.loads(run.stdout) == ["-m", "scheduler.run_job", str(job_dir)]


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_template_numbers_and_times(tmp_path):
    script = executor(tmp_path).render_script(spec(tmp_path / "j", Resources(3, 1536 * 1024**2 + 1, 3661)))
    assert '--cpus-per-task="3"' in script and '--mem="1537M"' in script and '--time="1:01:01"' in script
    assert "--partition" not in script
    assert script.rstrip().splitlines()[-1].startswith(f"exec {shlex.quote(sys.executable)} -m scheduler.run_job ")


@pytest.mark.parametrize(
    ("resources", "subdir", "message"),
    [
        (Resources(1, 1024**3, 60, "", "--qos=a\n#SBATCH --uid=0"), "", "line breaks"),
        (Resources(1, 1024**3, 60, "", "--comment='unbalanced"), "", "No closing quotation"),
        (Resources(1, 1024**3, 60, "a\nb"), "", "line break"),
        (None, "back\\slash", "backslash"),
    ],
)
def test_impossible_scripts_are_refused_without_retry(tmp_path, monkeypatch, resources, subdir, message):
    fake = FakeSlurm(monkeypatch)
    with pytest.raises(SubmitError, match=message) as info:
        executor(tmp_path).submit(spec(tmp_path / subdir / JOB_ID, resources))
    assert info.value.retry is False
    assert fake.calls == []


def test_sbatch_quote():
    assert sbatch_quote('a "b" \\c #d') == '"a \\"b\\" \\\\c #d"'
    with pytest.raises(ValueError):
        sbatch_quote("a\rb")


# -- squeue and sacct as states and reasons --------------------------------------------------------

# Lines of `squeue -h -t all -O JobID:|,State:|,Reason:|,exit_code:|,TimeLimit:|,MinMemory:|,WorkDir:|`
# seen on this project's Slurm 22.05 (up to 68), then the states a single node cannot show.
SQUEUE_OUTPUT = """\
7|COMPLETED|None|0|365-00:00:00|0|/|
8|FAILED|NonZeroExitCode|768|UNLIMITED|0|/tmp/sl test/a'b|
9|CANCELLED|None|15|UNLIMITED|0|/tmp/sl test/a'b|
10|FAILED|JobLaunchFailure|9|UNLIMITED|0|/tmp/sl test/a'b|
11|PENDING|JobHeldUser|0|UNLIMITED|0|/tmp/sl test/a'b|
18|PENDING|Resources|0|UNLIMITED|0|/tmp|
19|PENDING|Priority|0|UNLIMITED|0|/tmp|
24|PENDING|PartitionConfig|0|UNLIMITED|0|/tmp|
28|PENDING|None|0|UNLIMITED|0|/tmp/xxxx/yyyy|
31|RUNNING|None|0|1:30|1G|/tmp/sl test/j'ob %j #x/039a0a55|
40|TIMEOUT|TimeLimit|15|1:00|1G|/tmp/pytest-of-root/pytest-97/slurm0/jobs dir 'q' "d" #1 %j $HOME/05a0ee1a|
41|FAILED|NonZeroExitCode|512|2:00|300M|/tmp/pytest-of-root/pytest-89/jobs dir 'q' "d" #1 %j $HOME/0123abcd|
68|CANCELLED|JobHeldUser|0|2:00|1G|/tmp/pytest-of-root/pytest-97/slurm0/jobs dir 'q' "d" #1 %j $HOME/0d32f68f|
39|COMPLETING|None|0|2:00|1G|/tmp/w|
42|OUT_OF_MEMORY|OutOfMemory|0|1:00|512M|/tmp/w|
43|NODE_FAIL|NodeDown|0|1-00:00:00|1G|/tmp/w|
44|PREEMPTED|None|0|1:00|1G|/tmp/w|
45|BOOT_FAIL|None|0|1:00|1G|/tmp/w|
46|DEADLINE|DeadLine|0|1:00|1G|/tmp/w|
47|CONFIGURING|None|0|1:00|1G|/tmp/w|
48|SUSPENDED|None|0|1:00|1G|/tmp/w|
49|REQUEUED|None|0|1:00|1G|/tmp/w|
50|REVOKED|None|0|1:00|1G|/tmp/w|
51|SPECIAL_EXIT|None|0|1:00|1G|/tmp/w|
52|FAILED|NonZeroExitCode|32512|1:00|1G|/tmp/w|x|
53|SOMETHING_NEW|None|0|1:00|1G|/tmp/w|
"""

EXPECTED = {
    "7": NativeStatus(ENDED, ""),
    "8": NativeStatus(ENDED, "failed on Slurm with exit code 3"),
    "9": NativeStatus(ENDED, "was cancelled on Slurm (scancel)"),
    "10": NativeStatus(ENDED, "was killed by signal SIGKILL on Slurm (JobLaunchFailure)"),
    "11": NativeStatus(QUEUED),
    "18": NativeStatus(QUEUED),
    "19": NativeStatus(QUEUED),
    "24": NativeStatus(QUEUED),
    "28": NativeStatus(QUEUED),
    "31": NativeStatus(RUNNING),
    "40": NativeStatus(ENDED, "exceeded its time limit of 0:01:00 on Slurm"),
    "39": NativeStatus(RUNNING),
    "41": NativeStatus(ENDED, "failed on Slurm with exit code 2"),
    "68": NativeStatus(ENDED, "was cancelled on Slurm (scancel)"),
    "42": NativeStatus(ENDED, "was killed on Slurm for using more than the memory it asked for (512M)"),
    "43": NativeStatus(ENDED, "was ended on Slurm by the failure of its node"),
    "44": NativeStatus(ENDED, "was preempted on Slurm by a job of higher priority"),
    "45": NativeStatus(ENDED, "could not start on Slurm: its node failed to boot"),
    "46": NativeStatus(ENDED, "missed its deadline on Slurm"),
    "47": NativeStatus(QUEUED),
    "48": NativeStatus(QUEUED),
    "49": NativeStatus(QUEUED),
    "50": NativeStatus(ENDED, "was revoked on Slurm: another cluster of its federation runs it"),
    "51": NativeStatus(QUEUED),
    "52": NativeStatus(ENDED, "failed on Slurm with exit code 127"),
    "53": NativeStatus(QUEUED),  # an unknown state stays followed; a purged job ends as unknown to Slurm
}


def test_squeue_lines_as_states_and_reasons():
    assert parse_squeue(SQUEUE_OUTPUT) == EXPECTED


@pytest.mark.parametrize("state", sorted(_STATE_MAP))
def test_every_state_of_the_table(state):
    status = parse_squeue(f"70|{state}|None|256|1:00|1G|/nowhere|")["70"]
    assert status.state is _STATE_MAP[state][0]
    assert bool(status.reason) == (status.state is ENDED and state != "COMPLETED")


def test_failure_reason_ends_with_the_launchers_error_output(tmp_path):
    (tmp_path / "slurm-60.err").write_text("\n\nsh: 1: exec: /no/python: not found\n", encoding="utf-8")
    line = f"60|FAILED|NonZeroExitCode|32512|1:00|1G|{tmp_path}|"
    assert parse_squeue(line) == {
        "60": NativeStatus(
            ENDED, "failed on Slurm with exit code 127; its error output ends: sh: 1: exec: /no/python: not found"
        )
    }


def test_sacct_lines():
    output = "61|CANCELLED by 0|None|0:15|00:01:00|1G|/tmp/w\n62|FAILED|NonZeroExitCode|2:0|01:00:00|1G|/tmp/w\n63|TIMEOUT|TimeLimit|0:15|1-00:00:00|1G|/tmp/w\n64|COMPLETED|None|0:0|00:01:00|1G|/tmp/w\n"
    assert parse_sacct(output) == {
        "61": NativeStatus(ENDED, "was cancelled on Slurm (scancel)"),
        "62": NativeStatus(ENDED, "failed on Slurm with exit code 2"),
        "63": NativeStatus(ENDED, "exceeded its time limit of 24:00:00 on Slurm"),
        "64": NativeStatus(ENDED, ""),
    }


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1:00", "0:01:00"),
        ("2:00:00", "2:00:00"),
        ("1-00:00:00", "24:00:00"),
        ("30", "0:30:00"),
        ("1-2", "26:00:00"),
        ("UNLIMITED", "UNLIMITED"),
        ("01:02:03", "1:02:03"),
    ],
)
def test_time_limits(text, expected):
    assert hms(text) == expected


def test_exit_statuses():
    assert exit_status("768") == (3, 0)
    assert exit_status("9") == (0, 9)
    assert exit_status("3:0") == (3, 0)
    assert exit_status("0:15") == (0, 15)
    assert exit_status("") == (0, 0)
    assert exit_status("junk") == (0, 0)


def test_squeue_format_names_every_field():
    assert len(SQUEUE_FIELDS) == 7 and SQUEUE_FIELDS[-1] == "WorkDir"


# -- the executor against fake Slurm tools --------------------------------------------------------


class FakeSlurm:
    """Replaces subprocess.run for the executor: answers by command name from ``answers``."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls: list[list[str]] = []
        self.answers: dict[str, list[object]] = {}
        monkeypatch.setattr(batch.subprocess, "run", self.run)

    def answer(self, command: str, *answers: object) -> None:
        self.answers.setdefault(command, []).extend(answers)

    def run(self, argv, **kwargs):  # type: ignore[no-untyped-def]
        self.calls.append(list(argv))
        queue = self.answers.get(argv[0]) or [(0, "", "")]
        answer = queue.pop(0) if len(queue) > 1 else queue[0]
        if isinstance(answer, BaseException):
            raise answer
        code, out, err = answer  # type: ignore[misc]
        return subprocess.CompletedProcess(argv, code, out, err)

    def names(self) -> list[str]:
        return [argv[0] for argv in self.calls]


def test_submit_runs_sbatch_on_the_written_script(tmp_path, monkeypatch):
    fake = FakeSlurm(monkeypatch)
    fake.answer("sbatch", (0, "4242\n", ""))
    slurm = executor(tmp_path)
    job = spec(tmp_path / JOB_ID)
    assert slurm.submit(job) == "4242"
    assert fake.calls == [["sbatch", "--parsable", str(job.job_dir / "slurm.sh")]]
    assert (job.job_dir / "batch.submitted").read_text() == "4242"
    assert slurm.queries == 1
    assert slurm.describe_queued("4242") == "queued on Slurm as job 4242"


def test_multi_cluster_answer(tmp_path, monkeypatch):
    FakeSlurm(monkeypatch).answer("sbatch", (0, "77;cluster2\n", ""))
    assert executor(tmp_path).submit(spec(tmp_path / JOB_ID)) == "77"


@pytest.mark.parametrize(
    ("answer", "retry", "words"),
    [
        ((1, "", "sbatch: error: invalid partition specified: nope\n"), False, "invalid partition"),
        (
            (1, "", "sbatch: error: Batch job submission failed: Requested node configuration is not available\n"),
            False,
            "not available",
        ),
        (
            (255, "", "sbatch: unrecognized option '--bogus'\nTry \"sbatch --help\" for more information\n"),
            False,
            "unrecognized option",
        ),
        (
            (
                1,
                "",
                "sbatch: error: Batch job submission failed: Unable to contact slurm controller (connect failure)\n",
            ),
            True,
            "unavailable",
        ),
        (
            (1, "", "sbatch: error: Batch job submission failed: Socket timed out on send/recv operation\n"),
            True,
            "unavailable",
        ),
        ((1, "", "sbatch: error: something nobody has seen before\n"), True, "something nobody"),
        ((0, "Submitted batch job 5\n", ""), True, "instead of a job id"),
        (FileNotFoundError(2, "No such file"), True, "not installed"),
        (subprocess.TimeoutExpired("sbatch", 30), True, "did not answer within 30 s"),
    ],
)
def test_submission_failures(tmp_path, monkeypatch, answer, retry, words):
    FakeSlurm(monkeypatch).answer("sbatch", answer)
    with pytest.raises(SubmitError, match=words) as info:
        executor(tmp_path).submit(spec(tmp_path / JOB_ID))
    assert info.value.retry is retry


def test_submission_is_not_repeated_after_an_uncertain_failure(tmp_path, monkeypatch):
    """sbatch timed out: it may have reached Slurm. The retry finds the job instead of submitting again."""
    fake = FakeSlurm(monkeypatch)
    job = spec(tmp_path / JOB_ID)
    slurm = executor(tmp_path)
    fake.answer("sbatch", subprocess.TimeoutExpired("sbatch", 30))
    with pytest.raises(SubmitError):
        slurm.submit(job)
    fake.answer("squeue", (0, f"12|/elsewhere|\n13|{job.job_dir}|\n", ""))
    assert slurm.submit(job) == "13"
    assert fake.names() == ["sbatch", "squeue"]
    assert fake.calls[1][fake.calls[1].index("-n") + 1] == f"hpc-wps-{JOB_ID[:8]}"
    # A restarted dispatcher that never recorded the id gets it from the job directory, with no command.
    assert executor(tmp_path).submit(job) == "13"
    assert fake.names() == ["sbatch", "squeue"]


def test_submission_goes_ahead_when_the_earlier_one_never_arrived(tmp_path, monkeypatch):
    fake = FakeSlurm(monkeypatch)
    job = spec(tmp_path / JOB_ID)
    (job.job_dir / "batch.submitted").write_text("")
    fake.answer("squeue", (0, "", ""))
    fake.answer("sacct", (0, "", ""))
    fake.answer("sbatch", (0, "14\n", ""))
    assert executor(tmp_path).submit(job) == "14"
    assert fake.names() == ["squeue", "sacct", "sbatch"]


def test_a_job_that_ran_and_left_squeue_is_found_in_accounting(tmp_path, monkeypatch):
    """The earlier sbatch's answer was lost, and the job has run and left squeue (MinJobAge) before the
    retry: accounting still knows it by name and directory, so it is not submitted a second time."""
    fake = FakeSlurm(monkeypatch)
    job = spec(tmp_path / JOB_ID)
    (job.job_dir / "batch.submitted").write_text("")
    fake.answer("squeue", (0, "", ""))
    fake.answer("sacct", (0, f"40|/elsewhere\n41|{job.job_dir}\n", ""))
    assert executor(tmp_path).submit(job) == "41"
    assert fake.names() == ["squeue", "sacct"]
    sacct = fake.calls[1]
    assert sacct[sacct.index("--name") + 1] == f"hpc-wps-{JOB_ID[:8]}" and "-S" in sacct
    assert (job.job_dir / "batch.submitted").read_text() == "41"


def test_a_refused_or_unreachable_submission_leaves_no_marker(tmp_path, monkeypatch):
    fake = FakeSlurm(monkeypatch)
    job = spec(tmp_path / JOB_ID)
    fake.answer(
        "sbatch",
        (1, "", "sbatch: error: Batch job submission failed: Unable to contact slurm controller (connect failure)"),
    )
    with pytest.raises(SubmitError):
        executor(tmp_path).submit(job)
    assert not (job.job_dir / "batch.submitted").exists()


def test_one_squeue_for_all_jobs(tmp_path, monkeypatch):
    fake = FakeSlurm(monkeypatch)
    fake.answer("squeue", (0, SQUEUE_OUTPUT, ""))
    fake.answer("sacct", (1, "", "Slurm accounting storage is disabled\n"))
    slurm = executor(tmp_path)
    ids = [str(i) for i in range(1, 60)]
    statuses = slurm.poll_many(ids)
    assert set(statuses) == set(ids)
    assert statuses["31"] == NativeStatus(RUNNING)
    assert statuses["1"] == NativeStatus(ENDED, "is no longer known to Slurm")
    assert fake.names() == ["squeue", "sacct"]
    assert fake.calls[0][fake.calls[0].index("-j") + 1] == ",".join(ids)
    # Accounting is known to be off now: later polls run squeue alone, whatever is missing.
    slurm.poll_many(ids)
    slurm.poll_many(ids)
    assert fake.names() == ["squeue", "sacct", "squeue", "squeue"]
    assert slurm.queries == 4


def test_finished_jobs_from_accounting(tmp_path, monkeypatch):
    fake = FakeSlurm(monkeypatch)
    fake.answer("squeue", (0, "31|RUNNING|None|0|1:30|1G|/w|\n", ""))
    fake.answer("sacct", (0, "61|CANCELLED by 0|None|0:15|00:01:00|1G|/tmp/w\n", ""))
    slurm = executor(tmp_path)
    statuses = slurm.poll_many(["31", "61", "62"])
    assert statuses == {
        "31": NativeStatus(RUNNING),
        "61": NativeStatus(ENDED, "was cancelled on Slurm (scancel)"),
    }  # 62 is in neither: its record may still be on its way to the database
    sacct = fake.calls[1]
    assert sacct[:5] == ["sacct", "-n", "-P", "-X", "-j"] and sacct[5] == "61,62"
    monkeypatch.setattr("scheduler.executors.batch.base.VANISH_GRACE", 0.0)
    assert slurm.poll_many(["31", "62"])["62"] == NativeStatus(ENDED, "is no longer known to Slurm")
    assert fake.names() == ["squeue", "sacct", "squeue", "sacct"]  # one of each per poll, for all jobs


def test_unknown_ids_only(tmp_path, monkeypatch):
    """squeue refuses a list in which no id is known; a version refusing one unknown id among known
    ones would end them all, so a refused list is asked again as all our jobs."""
    fake = FakeSlurm(monkeypatch)
    fake.answer(
        "squeue",
        (1, "", "slurm_load_jobs error: Invalid job id specified\n"),
        (0, "31|RUNNING|None|0|1:30|1G|/w|\n", ""),
    )
    fake.answer("sacct", (1, "", "Slurm accounting storage is disabled\n"))
    slurm = executor(tmp_path)
    assert slurm.poll_many(["31", "999"]) == {
        "31": NativeStatus(RUNNING),
        "999": NativeStatus(ENDED, "is no longer known to Slurm"),
    }
    assert fake.calls[1][-2] == "-u"
    fake.calls.clear()
    assert slurm.poll_many(["999"]) == {"999": NativeStatus(ENDED, "is no longer known to Slurm")}
    assert fake.names() == ["squeue"]


def test_polling_when_slurm_does_not_answer(tmp_path, monkeypatch):
    FakeSlurm(monkeypatch).answer(
        "squeue", (1, "", "slurm_load_jobs error: Unable to contact slurm controller (connect failure)\n")
    )
    with pytest.raises(SubmitError, match="Unable to contact"):
        executor(tmp_path).poll_many(["1"])


def test_many_jobs_are_asked_for_as_all_of_ours(tmp_path, monkeypatch):
    fake = FakeSlurm(monkeypatch)
    fake.answer("sacct", (1, "", "Slurm accounting storage is disabled\n"))
    executor(tmp_path).poll_many([str(i) for i in range(5000)])
    assert "-j" not in fake.calls[0] and "-u" in fake.calls[0]
    assert fake.names() == ["squeue", "sacct"]


def test_cancel_is_a_request_sent_once(tmp_path, monkeypatch):
    fake = FakeSlurm(monkeypatch)
    slurm = executor(tmp_path)
    slurm.cancel("5")
    slurm.cancel("5")  # the next poll before the job has ended: not sent again
    assert fake.calls == [["scancel", "5"]]
    fake.answer("squeue", (0, "5|CANCELLED|None|15|1:00|1G|/w|\n", ""))
    assert slurm.poll_many(["5"])["5"].state is ENDED
    fake.answers["scancel"] = [
        (1, "", "scancel: error: Kill job error on job id 6: Job/step already completing or completed\n")
    ]
    slurm.cancel("6")  # ended already: not an error
    fake.answers["scancel"] = [FileNotFoundError(2, "No such file")]
    slurm.cancel("7")  # logged; asked again at the next poll
    slurm.cancel("7")
    assert fake.names() == ["scancel", "squeue", "scancel", "scancel", "scancel"]


def test_attach_needs_nothing(tmp_path, monkeypatch):
    fake = FakeSlurm(monkeypatch)
    executor(tmp_path).attach("5")
    assert fake.calls == []


def test_the_command_line_never_passes_through_a_shell(tmp_path, monkeypatch):
    fake = FakeSlurm(monkeypatch)
    fake.answer("sbatch", (0, "8\n", ""))
    job = spec(tmp_path / NASTY / JOB_ID)
    executor(tmp_path).submit(job)
    assert fake.calls[0][-1] == str(job.job_dir / "slurm.sh")
    assert re.search(r"exec .* scheduler\.run_job '", (job.job_dir / "slurm.sh").read_text())


# -- job arrays ---------------------------------------------------------------------------------------


def specs(tmp_path: Path, count: int, resources: Resources | None = None) -> list[JobSpec]:
    jobs = []
    for index in range(count):
        job_id = f"{index:08d}-cd6a-4c30-b894-2dfe6a5f30eb"
        (tmp_path / job_id).mkdir()
        jobs.append(JobSpec(job_id, "sleep", tmp_path / job_id, {}, resources))
    return jobs


def test_array_task_lines_as_states_and_reasons(tmp_path):
    """squeue -r lists each task as ARRAY_TASK with the array's directory; a task's error output is
    read through the array directory's link named by its index."""
    (tmp_path / "job").mkdir()
    (tmp_path / "3").symlink_to("job")
    (tmp_path / "job" / "slurm-12_3.err").write_text("Traceback\nValueError: no\n", encoding="utf-8")
    output = f"12_3|FAILED|NonZeroExitCode|256|1:00|1G|{tmp_path}|\n12_4|TIMEOUT|TimeLimit|15|1:00|1G|{tmp_path}|\n"
    assert parse_squeue(output) == {
        "12_3": NativeStatus(
            ENDED, "failed on Slurm with exit code 1; its error output ends: Traceback | ValueError: no"
        ),
        "12_4": NativeStatus(ENDED, "exceeded its time limit of 0:01:00 on Slurm"),
    }
    assert parse_sacct("12_5|CANCELLED by 0|None|0:15|00:01:00|1G|/w\n") == {
        "12_5": NativeStatus(ENDED, "was cancelled on Slurm (scancel)")
    }


def test_task_ids():
    assert task_id("12_3", 5) == "12_5"
    assert task_id("12_[0-9]", 7) == "12_7"
    assert task_id("12_[0-2,5]%4", 0) == "12_0"


def test_jobs_of_one_cycle_go_as_one_array(tmp_path, monkeypatch):
    fake = FakeSlurm(monkeypatch)
    fake.answer("sbatch", (0, "12\n", ""))
    slurm = executor(tmp_path)
    jobs = specs(tmp_path, 3)
    assert list(slurm.submit_many(jobs)) == ["12_0", "12_1", "12_2"]
    assert [argv[:3] for argv in fake.calls] == [["sbatch", "--parsable", "--array=0-2"]]
    script = Path(fake.calls[0][3])
    batch = script.parent
    assert batch.parent == tmp_path / "arrays"
    for index, job in enumerate(jobs):
        assert (batch / str(index)).resolve() == job.job_dir
        assert (job.job_dir / "batch.submitted").read_text() == f"12_{index}"
    options = sbatch_options(script.read_text())
    assert f"--chdir={batch}" in options and f"--output={batch}/%a/slurm-%A_%a.out" in options
    assert script.read_text().rstrip().endswith('-m scheduler.run_job "$SLURM_ARRAY_TASK_ID"')
    assert slurm.queries == 1


# A launcher that prints the job directory it is given, resolved ([scheduler] python).
PRINT_JOB_DIR = f"{sys.executable} -c 'import sys, pathlib; print(pathlib.Path(sys.argv[-1]).resolve())'"


def launcher_dir(script: Path, environment: dict[str, str]) -> str:
    """The job directory an array's script, run by the shell in its directory, gives PRINT_JOB_DIR."""
    shell = subprocess.Popen(  # not subprocess.run, which the fake replaces
        ["sh", str(script)], cwd=script.parent, env=environment, stdout=subprocess.PIPE, text=True
    )
    printed, _ = shell.communicate(timeout=30)
    return printed.strip()


def test_a_task_runs_the_launcher_in_its_own_job_directory(tmp_path, monkeypatch):
    """The array's script as the shell runs it for task 1: the launcher gets the link to job 1's directory."""
    fake = FakeSlurm(monkeypatch)
    fake.answer("sbatch", (0, "12\n", ""))
    jobs = specs(tmp_path, 2)
    list(executor(tmp_path, python=PRINT_JOB_DIR).submit_many(jobs))
    assert launcher_dir(Path(fake.calls[0][3]), {"SLURM_ARRAY_TASK_ID": "1"}) == str(jobs[1].job_dir)


def test_jobs_asking_for_other_resources_go_in_their_own_array(tmp_path, monkeypatch):
    fake = FakeSlurm(monkeypatch)
    fake.answer("sbatch", (0, "12\n", ""), (0, "13\n", ""))
    jobs = specs(tmp_path, 3)
    jobs[1] = JobSpec(jobs[1].job_id, "sleep", jobs[1].job_dir, {}, Resources(1, 1024**3, 60))
    assert list(executor(tmp_path).submit_many(jobs)) == ["12_0", "13", "12_1"]
    assert [argv[2].startswith("--array") for argv in fake.calls] == [True, False]


def test_no_arrays_when_job_directories_are_staged(tmp_path, monkeypatch):
    fake = FakeSlurm(monkeypatch)
    slurm = executor(tmp_path)
    monkeypatch.setattr(slurm.runner, "shared", False)
    fake.answer("sbatch", (0, "12\n", ""), (0, "13\n", ""))
    assert list(slurm.submit_many(specs(tmp_path, 2))) == ["12", "13"]


def test_a_cycle_hands_over_more_jobs_where_they_go_as_arrays(tmp_path, monkeypatch):
    """One sbatch (one SSH round trip with remote) for up to ARRAY_PER_CYCLE jobs; one by one, fewer,
    so that a cycle of single submissions stays short."""
    slurm = executor(tmp_path)
    assert slurm.per_cycle() == batch.ARRAY_PER_CYCLE > PER_CYCLE
    monkeypatch.setattr(slurm.runner, "shared", False)
    assert slurm.per_cycle() == PER_CYCLE


def test_a_refused_array_fails_every_job_and_leaves_no_marker(tmp_path, monkeypatch):
    FakeSlurm(monkeypatch).answer("sbatch", (1, "", "sbatch: error: invalid partition specified: nope\n"))
    jobs = specs(tmp_path, 2)
    results = list(executor(tmp_path).submit_many(jobs))
    assert all(isinstance(r, SubmitError) and not r.retry and "invalid partition" in str(r) for r in results)
    assert not any((job.job_dir / "batch.submitted").exists() for job in jobs)


def test_a_task_whose_array_answer_was_lost_is_found_not_submitted_again(tmp_path, monkeypatch):
    fake = FakeSlurm(monkeypatch)
    fake.answer("sbatch", subprocess.TimeoutExpired("sbatch", 30))
    jobs = specs(tmp_path, 3)
    assert all(isinstance(r, SubmitError) and r.retry for r in executor(tmp_path).submit_many(jobs))
    batch = next((tmp_path / "arrays").iterdir())
    # A restarted dispatcher: the array waits with its tasks unsplit, squeue shows it so.
    fake.answer("squeue", (0, f"12_[0-2]|{batch}|\n", ""))
    assert list(executor(tmp_path).submit_many(jobs[1:])) == ["12_1", "12_2"]
    assert fake.names() == ["sbatch", "squeue", "squeue"]
    assert fake.calls[1][fake.calls[1].index("-n") + 1] == f"hpc-wps-{batch.name[:8]}"


def test_array_directories_go_once_their_jobs_have(tmp_path, monkeypatch):
    FakeSlurm(monkeypatch).answer("sbatch", (0, "12\n", ""), (0, "13\n", ""))
    slurm = executor(tmp_path)
    first, second = specs(tmp_path, 4)[:2], specs(tmp_path / "more", 0)
    list(slurm.submit_many(first))
    shutil.rmtree(first[0].job_dir)
    slurm.remove_leftovers(lambda ids: set())
    assert len(list((tmp_path / "arrays").iterdir())) == 1
    shutil.rmtree(first[1].job_dir)
    slurm.remove_leftovers(lambda ids: set())
    assert list((tmp_path / "arrays").iterdir()) == [] and not second
