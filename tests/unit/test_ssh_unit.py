"""``[scheduler] remote`` without a login host: the URL and the keys refused at start, and how the SSH
runner reads ssh's answers, against a fake ``ssh`` (tests/clusters/test_remote_slurm.py runs the real
one against a real sshd)."""

from __future__ import annotations

import re
import shlex
import subprocess
from pathlib import Path

import pytest

from app.settings import load_settings
from processes.setting_fields import SettingsError
from scheduler.executors.batch.commands import LocalRunner, SchedulerUnavailable, runner_for
from scheduler.executors.batch.ssh import SshRunner, sftp_word
from scheduler.settings import SchedulerSettings, SshDestination

REMOTE = "ssh://wps@login.example.org:2222"


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("ssh://wps@login", SshDestination("wps", "login")),
        (REMOTE, SshDestination("wps", "login.example.org", 2222)),
        ("ssh://w.p-s@10.0.0.1/", SshDestination("w.p-s", "10.0.0.1")),
    ],
)
def test_destinations(url: str, expected: SshDestination):
    assert SshDestination.parse(url) == expected


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("login.example.org", "is not ssh://user@host"),
        ("http://wps@login", "is not ssh://user@host"),
        ("ssh://login", "name the user"),
        ("ssh://-oProxyCommand=x@login", "name the user"),
        ("ssh://wps@-oProxyCommand=x", "is not a host name"),
        ("ssh://wps:secret@login", "is not ssh://user@host"),
        ("ssh://wps@login:99999", "port"),
        ("ssh://wps@login/home", "is not ssh://user@host"),
    ],
)
def test_bad_destinations(url: str, expected: str):
    with pytest.raises(ValueError, match=expected):
        SshDestination.parse(url)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[scheduler]\nremote = ssh://login\n", "[scheduler] remote: 'ssh://login': name the user"),
        (f"[scheduler]\nsystem = drmaa\nremote = {REMOTE}\n", "remote: runs the command-line executors only"),
        ("[scheduler]\nstaging = sftp\n", "staging = sftp: needs remote and remote_workdir"),
        (f"[scheduler]\nremote = {REMOTE}\nstaging = sftp\n", "staging = sftp: needs remote and remote_workdir"),
        (f"[scheduler]\nremote = {REMOTE}\nstaging = sftp\nremote_workdir = /s/*\n", "remote_workdir: '/s/*'"),
        ("[scheduler]\nstaging = scp\n", "[scheduler] staging"),
        (f"[scheduler]\nremote = {REMOTE}\nssh_key = /keys/%u key\n", "ssh_key: a path without blanks"),
        (f"[scheduler]\nremote = {REMOTE}\nssh_known_hosts = /k/a b\n", "ssh_known_hosts: a path without"),
    ],
)
def test_remote_settings_refused_at_start(tmp_path: Path, text: str, expected: str):
    config = tmp_path / "bad.cfg"
    config.write_text(text, encoding="utf-8")
    with pytest.raises(SettingsError) as error:
        load_settings(config, environ={})
    assert expected in str(error.value)


def test_a_remote_configuration_loads(tmp_path: Path):
    config = tmp_path / "good.cfg"
    config.write_text(f"[scheduler]\nremote = {REMOTE}\nstaging = sftp\nremote_workdir = /scratch/wps jobs\n")
    assert load_settings(config, environ={}).scheduler.remote_workdir == "/scratch/wps jobs"


def test_runner_follows_the_settings():
    assert isinstance(runner_for(SchedulerSettings()), LocalRunner)
    runner = runner_for(SchedulerSettings(remote=REMOTE))
    try:
        assert isinstance(runner, SshRunner) and runner.user == "wps"
    finally:
        runner.close()


def test_sftp_words():
    assert sftp_word("/scratch/wps jobs/1") == '"/scratch/wps jobs/1"'
    for path in ('/a"b', "/a'b", "/a\\b", "/a*", "/a?", "/a[1]", "/a\nb"):
        with pytest.raises(ValueError):
            sftp_word(path)


# -- the runner against a fake ssh ------------------------------------------------------------------


class FakeSsh:
    """Replaces subprocess.run: each call takes the next answer (exit status, stderr)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, *answers: tuple[int, str]) -> None:
        self.calls: list[list[str]] = []
        self.answers = list(answers)
        monkeypatch.setattr(subprocess, "run", self.run)

    def run(self, argv, **kwargs):  # type: ignore[no-untyped-def]
        self.calls.append(list(argv))
        code, err = self.answers.pop(0) if self.answers else (0, "")
        return subprocess.CompletedProcess(argv, code, "", err)


@pytest.fixture
def runner():  # type: ignore[no-untyped-def]
    runner = SshRunner(SchedulerSettings(remote=REMOTE, ssh_known_hosts="/etc/wps/known_hosts"))
    yield runner
    runner.close()


def test_argv_travels_as_one_quoted_word_after_the_options(monkeypatch, runner):
    fake = FakeSsh(monkeypatch)
    argv = ["sbatch", "--parsable", "/jobs/a b/'x'; rm -rf ~/slurm.sh"]
    assert runner.run(argv, 30).returncode == 0
    call = fake.calls[0]
    assert call[0] == "ssh" and call[-3:] == ["--", "login.example.org", shlex.join(argv)]
    assert shlex.split(call[-1]) == argv
    assert {"-oBatchMode=yes", "-oStrictHostKeyChecking=yes", "-oControlMaster=auto"} <= set(call)
    assert "-oUserKnownHostsFile=/etc/wps/known_hosts" in call and call[call.index("-p") + 1] == "2222"


def test_a_connection_not_made_is_tried_once_more(monkeypatch, runner):
    fake = FakeSsh(monkeypatch, (255, "ssh: connect to host login port 2222: Connection refused"), (0, ""))
    assert runner.run(["squeue"], 30).returncode == 0
    assert len(fake.calls) == 2


def test_a_connection_still_refused_is_certainly_not_run(monkeypatch, runner):
    refused = (255, "ssh: connect to host login port 2222: Connection refused")
    fake = FakeSsh(monkeypatch, refused, refused)
    with pytest.raises(SchedulerUnavailable, match=re.escape("cannot reach wps@login.example.org:2222")) as error:
        runner.run(["sbatch", "x"], 30)
    assert error.value.certain and len(fake.calls) == 2


def test_a_connection_lost_midway_may_have_run(monkeypatch, runner):
    fake = FakeSsh(monkeypatch, (255, "Shared connection to login closed."))
    with pytest.raises(SchedulerUnavailable, match="broke off during sbatch") as error:
        runner.run(["sbatch", "x"], 30)
    assert not error.value.certain and len(fake.calls) == 1  # a submission looks for its job first


def test_a_wrong_host_key_is_not_tried_again(monkeypatch, runner):
    fake = FakeSsh(monkeypatch, (255, "Host key verification failed."))
    with pytest.raises(
        SchedulerUnavailable, match=re.escape("its host key is not the one /etc/wps/known_hosts")
    ) as error:
        runner.run(["squeue"], 30)
    assert error.value.certain and len(fake.calls) == 1


def test_a_command_failing_on_the_login_host_is_its_own_answer(monkeypatch, runner):
    FakeSsh(monkeypatch, (1, "sbatch: error: invalid partition"))
    assert runner.run(["sbatch", "x"], 30).returncode == 1
