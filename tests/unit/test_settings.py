"""Configuration: defaults, INI files, environment overrides, and errors that name the file and key."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.settings import SettingsError, load_settings, reference
from processes.setting_fields import parse_size
from scheduler.settings import QuotaSettings
from tests.xsd import ROOT


def test_embedded_defaults():
    settings = load_settings(environ={})
    assert settings.processing.mode == "local"
    assert settings.server.url == "http://127.0.0.1:5000/wps"
    assert settings.database_url.startswith("sqlite:///") and settings.database_url.endswith("var/jobs.sqlite")


def test_file_then_environment(tmp_path: Path):
    config = tmp_path / "site.cfg"
    config.write_text("[server]\nport = 6000\n[processing]\nslots = 4\nprocesses = a.b:C, d:E\n", encoding="utf-8")
    settings = load_settings(config, environ={"HPC_WPS_PROCESSING_SLOTS": "8"})
    assert settings.server.port == 6000
    assert settings.server.url == "http://127.0.0.1:6000/wps"
    assert settings.processing.slots == 8
    assert settings.processing.processes == ("a.b:C", "d:E")
    named_by_env = load_settings(environ={"HPC_WPS_CONFIG": str(config)})
    assert named_by_env.server.port == 6000 and named_by_env.source == str(config)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[server]\nport = many\n", "[server] port"),
        ("[server]\nprot = 1\n", "unknown key [server] prot"),
        ("[severs]\nport = 1\n", "unknown section [severs]"),
        ("[processing]\nmode = cloud\n", "[processing] mode"),
        ("[processing]\nslots = 0\n", "[processing] slots"),
        ("[processing]\nsync_slots = 0\n", "[processing] sync_slots"),
        ("[server]\nthreads = 0\n", "[server] threads"),
        ("[processing]\nsync_slot_wait = -1\n", "[processing] sync_slot_wait"),
        ("[server]\nmax_request_size = lots\n", "[server] max_request_size"),
        ("[processing]\nprocesses = nocolon\n", "[processing] processes"),
        ("[processing]\nworker_nice = 20\n", "[processing] worker_nice"),
        ("[monitoring]\nhost_lost_after = 10\n", "[monitoring] host_lost_after"),
        ("[quotas]\nqueued_per_user = many\n", "[quotas] queued_per_user"),
        ("[quotas]\nrunning_per_user = -1\n", "[quotas] running_per_user"),
        ("[quotas]\nsync_per_user = 1.5\n", "[quotas] sync_per_user"),
        ("[quotas]\nstorage_per_user = 10 GB each\n", "[quotas] storage_per_user"),
        ("[quotas]\njobs_per_user = 1\n", "unknown key [quotas] jobs_per_user"),
        ("not an ini file", "not a valid INI file"),
        ("[auth]\nmode = kerberos\n", "[auth] mode"),
        ("[auth]\nmode = oidc\njwks_file = /nonexistent\naudience = wps\n", "[auth] issuer: required"),
        ("[auth]\nmode = oidc\njwks_file = /nonexistent\nissuer = https://idp\n", "[auth] audience: required"),
        ("[auth]\nmode = oidc\nissuer = https://idp\naudience = wps\n", "[auth] jwks_file: give either"),
        (
            "[auth]\nmode = oidc\nissuer = https://idp\naudience = wps\njwks_file = /x.json\njwks_url = https://idp/certs\n",
            "[auth] jwks_file: give either",
        ),
        (
            "[auth]\nmode = oidc\nissuer = https://idp\naudience = wps\njwks_url = ftp://idp/certs\n",
            "[auth] jwks_url: must be an http(s) URL",
        ),
        (
            "[auth]\nmode = oidc\nissuer = https://idp\naudience = wps\njwks_file = /nonexistent.json\n",
            "[auth] jwks_file: cannot read",
        ),
        (
            "[auth]\nmode = oidc\nissuer = https://idp\naudience = wps\njwks_file = /etc/hostname\n",
            "[auth] jwks_file: /etc/hostname is not a usable JWKS",
        ),
        ("[auth]\nanonymous = GetCapabilities, Everything\n", "[auth] anonymous: 'Everything'"),
        ("[auth]\nmode = header\n", "[auth] trusted_proxies: required"),
        ("[auth]\nmode = header\ntrusted_proxies = proxy.example\n", "[auth] trusted_proxies: 'proxy.example'"),
        ("[auth]\nmode = header\nheader = X Remote User\ntrusted_proxies = ::1\n", "[auth] header"),
        ("[processes]\nsay_hello.roles = a\n", "[processes] say_hello.roles: roles come from tokens"),
        ("[processes]\nsay_hello = a\n", "[processes] say_hello: keys of this section are"),
        ("[processes]\nsay_hello.roles = ,\n", "[processes] say_hello.roles: give at least one role"),
    ],
)
def test_errors_name_the_file_and_key(tmp_path: Path, text: str, expected: str):
    config = tmp_path / "bad.cfg"
    config.write_text(text, encoding="utf-8")
    with pytest.raises(SettingsError) as error:
        load_settings(config, environ={})
    assert str(config) in str(error.value) and expected in str(error.value)


def test_environment_error_names_the_variable():
    with pytest.raises(SettingsError, match="HPC_WPS_PROCESSING_QUEUE_LENGTH"):
        load_settings(environ={"HPC_WPS_PROCESSING_QUEUE_LENGTH": "-3"})


def test_sizes():
    assert parse_size("10MB") == 10 * 1024**2
    assert parse_size("512 KiB") == 512 * 1024
    assert parse_size("2g") == 2 * 1024**3
    assert parse_size("123") == 123


def test_reference_file_is_current():
    shipped = (ROOT / "config" / "reference.cfg").read_text(encoding="utf-8")
    assert reference() in shipped


def test_shipped_examples_load():
    for name in ("reference.cfg", "production.cfg"):
        load_settings(ROOT / "config" / name, environ={})


def test_the_engines_own_variables_are_read_once_by_the_configuration():
    """DOCKER_HOST and DRMAA_LIBRARY_PATH reach the settings when the file names no engine; the code
    that connects reads only its settings."""
    loaded = load_settings(environ={"DOCKER_HOST": "unix:///run/x.sock", "DRMAA_LIBRARY_PATH": "/opt/libdrmaa.so"})
    assert loaded.jobs.docker.url == "unix:///run/x.sock"
    assert loaded.jobs.scheduler.drmaa_library == "/opt/libdrmaa.so"
    named = load_settings(
        environ={
            "DOCKER_HOST": "unix:///run/x.sock",
            "HPC_WPS_DOCKER_URL": "tcp://127.0.0.1:2375",
            "DRMAA_LIBRARY_PATH": "/opt/libdrmaa.so",
            "HPC_WPS_SCHEDULER_DRMAA_LIBRARY": "/usr/lib/libdrmaa.so.1",
        }
    )
    assert named.docker.url == "tcp://127.0.0.1:2375"
    assert named.scheduler.drmaa_library == "/usr/lib/libdrmaa.so.1"
    assert load_settings(environ={}).docker.url == ""


def test_the_legacy_container_entry_is_ignored_with_a_warning(caplog):
    from app.factory import LEGACY_CONTAINER_ENTRY, service_registry

    settings = load_settings(environ={"HPC_WPS_PROCESSING_PROCESSES": LEGACY_CONTAINER_ENTRY})
    with caplog.at_level("WARNING", logger="app.factory"):
        registry = service_registry(settings)
    assert [p.identifier for p in registry] == [p.identifier for p in service_registry(load_settings(environ={}))]
    assert f"{LEGACY_CONTAINER_ENTRY} is no longer needed" in caplog.text


def test_the_job_system_gets_its_part_of_the_configuration(tmp_path):
    settings = load_settings(
        environ={
            "HPC_WPS_SERVER_WORKDIR": str(tmp_path),
            "HPC_WPS_MONITORING_HEARTBEAT_INTERVAL": "3",
            "HPC_WPS_MONITORING_HOST_LOST_AFTER": "900",
            "HPC_WPS_INPUTS_MAX_SIZE": "5MB",
        }
    )
    jobs = settings.jobs
    assert jobs.jobs_dir == tmp_path.resolve() / "jobs"
    assert jobs.database_url == f"sqlite:///{tmp_path.resolve() / 'jobs.sqlite'}"
    assert (jobs.heartbeat_interval, jobs.host_lost_after) == (3.0, 900.0)
    assert jobs.inputs.max_size == 5 * 1024**2
    assert jobs.processing is settings.processing and jobs.docker is settings.docker


def test_inputs_destinations_are_checked_and_the_service_itself_is_never_one(tmp_path):
    config = tmp_path / "bad.cfg"
    config.write_text("[inputs]\nallowed_hosts = 10.0.0.0/8, not a host\n", encoding="utf-8")
    with pytest.raises(SettingsError, match=r"bad\.cfg: \[inputs\] allowed_hosts: 'not a host' is not a host name"):
        load_settings(config, environ={})
    # Derived from [server], never a key of the file.
    config.write_text("[inputs]\nown_endpoints = 1.2.3.4:80\n", encoding="utf-8")
    with pytest.raises(SettingsError, match=r"unknown key \[inputs\] own_endpoints"):
        load_settings(config, environ={})
    config.write_text(
        "[server]\nhost = 0.0.0.0\nport = 8000\nurl = https://WPS.example.org/wps\n"
        "[inputs]\nallowed_hosts = .Data.example.org, 10.1.0.0/16\n",
        encoding="utf-8",
    )
    settings = load_settings(config, environ={})
    assert settings.inputs.allowed_hosts == (".data.example.org", "10.1.0.0/16")
    assert settings.jobs.inputs.own_endpoints == ("0.0.0.0:8000", "wps.example.org:443")
    assert "own_endpoints" not in reference() and "allowed_hosts" in reference()


def test_auth_and_process_roles(tmp_path: Path):
    """A working oidc configuration; [processes] keys keep their case, as process identifiers do."""
    from app.factory import build_app
    from scheduler.access import Caller
    from tests.tokens import Provider

    jwks = Provider().write_jwks(tmp_path / "jwks.json")
    config = tmp_path / "auth.cfg"
    text = (
        f"[server]\nworkdir = {tmp_path / 'work'}\n"
        f"[auth]\nmode = oidc\njwks_file = {jwks}\nissuer = https://idp\naudience = wps\nANONYMOUS = GetCapabilities\n"
        "[processes]\nsay_hello.roles = Greeters, admins\n"
    )
    config.write_text(text, encoding="utf-8")
    settings = load_settings(config, environ={})
    assert settings.auth.anonymous == ("GetCapabilities",)
    assert settings.jobs.access.roles == {"say_hello": frozenset({"Greeters", "admins"})}
    assert settings.jobs.access.allows(Caller("x", frozenset({"Greeters"})), "say_hello")
    assert not settings.jobs.access.allows(Caller("x", frozenset({"greeters"})), "say_hello")
    assert settings.jobs.access.allows(Caller("x", is_admin=True), "say_hello")
    assert settings.jobs.access.allows(Caller("x"), "echo")
    config.write_text(text.replace("say_hello.roles", "say_helo.roles"), encoding="utf-8")
    with pytest.raises(SettingsError, match=r"\[processes\] say_helo.roles: no process 'say_helo' is offered"):
        build_app(load_settings(config, environ={}))


def test_the_issues_quota_keys_reach_the_job_system(tmp_path):
    """The [quotas] keys under the names operators' files use, handed to the job system."""
    config = tmp_path / "quotas.cfg"
    config.write_text(
        "[quotas]\nrunning_per_user = 4\nqueued_per_user = 100\nsync_per_user = 1\nstorage_per_user = 10 GiB\n",
        encoding="utf-8",
    )
    assert load_settings(config, environ={}).jobs.quotas == QuotaSettings(4, 100, 1, 10 * 1024**3)
    assert load_settings(environ={}).jobs.quotas == QuotaSettings(0, 0, 0, 0)  # off unless configured


def test_serve_runs_threaded_workers_as_configured(tmp_path: Path):
    """What the README's gunicorn line shows: gthread workers, with the configured workers and threads."""
    from app.cli import _gunicorn_command

    config = tmp_path / "site.cfg"
    config.write_text("[server]\nworkers = 3\nthreads = 5\n", encoding="utf-8")
    command = _gunicorn_command(load_settings(config, environ={}))

    def option(name: str) -> str:
        return command[command.index(name) + 1]

    assert (option("--worker-class"), option("--workers"), option("--threads")) == ("gthread", "3", "5")
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for flag in ("--worker-class gthread", "--threads", "--timeout 30", "--no-control-socket"):
        assert flag in readme
