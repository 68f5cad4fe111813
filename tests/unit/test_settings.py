"""Configuration: defaults, INI files, environment overrides, and errors that name the file and key."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.settings import SettingsError, load_settings, reference
from processes.setting_fields import parse_size
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
        ("[server]\nmax_request_size = lots\n", "[server] max_request_size"),
        ("[processing]\nprocesses = nocolon\n", "[processing] processes"),
        ("[processing]\nworker_nice = 20\n", "[processing] worker_nice"),
        ("[monitoring]\nhost_lost_after = 10\n", "[monitoring] host_lost_after"),
        ("not an ini file", "not a valid INI file"),
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
