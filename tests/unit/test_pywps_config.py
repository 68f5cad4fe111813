"""``hpc-wps config from-pywps``: a bird's PyWPS configuration becomes one hpc-wps loads, with the
values PyWPS meant, and every setting that did not carry over as it was is listed with the reason."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from app.cli import main
from app.pywps_config import convert, document, pywps_size, read_pywps_config, size_text
from app.settings import Settings, load_settings
from processes.setting_fields import SettingsError, parse_size
from tests.xsd import ROOT

# A bird's packaged defaults, as birdhouse's finch ships them (src/finch/default.cfg) ...
BIRD_DEFAULTS = """\
[metadata:main]
identification_title = Finch
identification_abstract = A Web Processing Service for Climate Indicators.
identification_keywords = PyWPS, WPS, OGC, processing, birdhouse, finch
identification_keywords_type = theme
provider_name = Finch
provider_url=https://finch.readthedocs.org/en/latest/

[server]
url = http://localhost:5000/wps
outputurl = http://localhost:5000/outputs/
allowedinputpaths = /
maxsingleinputsize = 200mb
maxprocesses = 10
parallelprocesses = 2
language=en-US,fr

[finch]
subset_threads = 1
datasets_config = datasets.yml

[logging]
level = INFO
file = finch.log
database = sqlite:///pywps-logs.sqlite
format = [%(asctime)s] [%(levelname)s] line=%(lineno)s module=%(module)s %(message)s
"""

# ... and a site's file over them, as the bird's `start -c pywps.cfg` reads it, on a Grid Engine cluster.
SITE = """\
[server]
url = https://${WPS_HOST}/wps
outputpath = /data/finch/outputs
workdir = /data/finch/work
maxrequestsize = 20mb
allowedinputpaths = /data/climate:/data/obs
languages = en-US,fr-CA

[processing]
mode = scheduler
path = /opt/finch/bin
drmaa_native_specification = -l h_vmem=4G

[logging]
level = WARN
database = postgresql://finch:secret@db.example.org:5433/finch
"""


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def _convert(tmp_path: Path, *texts: str, environ: dict[str, str] | None = None) -> tuple[Settings, list[str], str]:
    """Convert PyWPS files with these texts (later ones override), write the result, and load it as
    ``hpc-wps config check`` does: returns the settings, the notes and the written document."""
    files = [_write(tmp_path / f"pywps-{n}.cfg", text) for n, text in enumerate(texts)]
    text, notes = convert(read_pywps_config(files, environ or {}))
    converted = _write(tmp_path / "hpc-wps.cfg", document(text, notes, files))
    return load_settings(converted, environ={}), notes, converted.read_text(encoding="utf-8")


def _noted(notes: list[str], where: str) -> str:
    """The one note about ``where`` (``[server] outputurl``)."""
    found = [note for note in notes if note.startswith(where)]
    assert len(found) == 1, f"{where} in {notes}"
    return found[0]


def test_a_birds_configuration_loads_with_the_values_pywps_meant(tmp_path: Path):
    settings, notes, _ = _convert(tmp_path, BIRD_DEFAULTS, SITE, environ={"WPS_HOST": "finch.example.org"})

    assert settings.server.url == "https://finch.example.org/wps"
    assert settings.server.workdir == Path("/data/finch/work")
    assert settings.server.max_request_size == 20 * 1024**2
    assert settings.server.language == "en-US"
    assert settings.inputs.max_size == 200 * 1024**2
    assert settings.inputs.allowed_dirs == (Path("/data/climate"), Path("/data/obs"))  # the site's, not /
    assert (settings.processing.slots, settings.processing.queue_length) == (2, 10)
    assert settings.processing.mode == "scheduler"
    assert settings.processing.demo_processes is False
    assert settings.scheduler.system == "drmaa"
    assert settings.scheduler.native == "-l h_vmem=4G"
    assert settings.database_url == "postgresql+psycopg://finch:secret@db.example.org:5433/finch"
    assert (settings.logging.level, settings.logging.file) == ("WARNING", "finch.log")
    assert settings.metadata.title == "Finch"
    assert settings.metadata.keywords == ("PyWPS", "WPS", "OGC", "processing", "birdhouse", "finch")
    assert settings.metadata.provider_site == "https://finch.readthedocs.org/en/latest/"

    why = {
        "[server] outputurl": "output files itself",
        "[server] outputpath": "job directory",
        "[server] language:": "fr",
        "[server] languages": "not a PyWPS 4.8 setting",
        "[server] url": "expands no variables",
        "[finch]": "your processes read it",
        "[metadata:main]": "identification_keywords_type",
        "[logging] level": "WARNING",
        "[logging] format": "its own lines",
        "[logging] database": "hpc-wps db upgrade",
        "[processing] path": "joblauncher",
        "[processing] drmaa_native_specification": "[scheduler] native",
    }
    for where, reason in why.items():
        assert reason in _noted(notes, where)
    assert len(notes) == len(why), notes


def test_the_notes_head_the_output_as_comments(tmp_path: Path):
    _, notes, written = _convert(tmp_path, BIRD_DEFAULTS)
    header = written.split("\n[", 1)[0]
    assert all(line.startswith("#") or not line for line in header.splitlines())
    unwrapped = " ".join(line.removeprefix("#").strip() for line in header.splitlines())
    assert notes and all(note in unwrapped for note in notes)
    assert "# processes = mybird.processes:processes" in written  # what the user still has to say


def test_every_key_carried_over_exists_in_hpc_wps(tmp_path: Path):
    settings, notes, _ = _convert(
        tmp_path,
        """\
[server]
url = http://wps.example.org:8093/wps
language = de-DE
workdir = /srv/wps
maxsingleinputsize = 1.5g
maxrequestsize = 512k
parallelprocesses = 6
maxprocesses = 40
allowedinputpaths = /srv/data
processes = mybird.processes.processes
encoding = utf-8
cleantempdir = true
sethomedir = false
storagetype = file
[processing]
mode = multiprocessing
drmaa_native_specification = -P climate
[logging]
level = debug
file = /var/log/wps.log
database = postgres://wps@localhost/wps
[metadata:main]
identification_title = A bird
identification_abstract = It computes
    on two lines.
identification_keywords = a, b
identification_fees = none at all
identification_accessconstraints = internal use
provider_name = An institute
provider_url = https://example.org
contact_name = Someone
contact_email = someone@example.org
""",
    )
    assert settings.server.url == "http://wps.example.org:8093/wps"
    assert (settings.server.language, settings.server.workdir) == ("de-DE", Path("/srv/wps"))
    assert settings.inputs.max_size == 1536 * 1024**2
    assert settings.server.max_request_size == 512 * 1024
    assert (settings.processing.slots, settings.processing.queue_length) == (6, 40)
    assert settings.inputs.allowed_dirs == (Path("/srv/data"),)
    assert settings.processing.processes == ("mybird.processes:processes",)
    assert settings.processing.mode == "local"
    assert settings.scheduler.native == "-P climate"
    assert (settings.logging.level, settings.logging.file) == ("DEBUG", "/var/log/wps.log")
    assert settings.database_url == "postgresql+psycopg://wps@localhost/wps"
    metadata = settings.metadata
    assert (metadata.title, metadata.abstract) == ("A bird", "It computes\non two lines.")
    assert (metadata.keywords, metadata.fees, metadata.access_constraints) == (
        ("a", "b"),
        "none at all",
        "internal use",
    )
    assert (metadata.provider_name, metadata.provider_site) == ("An institute", "https://example.org")
    assert (metadata.contact_name, metadata.contact_email) == ("Someone", "someone@example.org")
    # Values that ask for what hpc-wps does anyway need no note.
    assert [note.split(":")[0] for note in notes] == [
        "[processing] drmaa_native_specification",
        "[logging] database",
    ]


@pytest.mark.parametrize(
    ("text", "megabytes"),
    [("3mb", 3), ("3", 3), ("3 MB", 3), ("1.5g", 1536), ("2gb", 2048), ("512k", 0.5), ("1048576b", 1), (".5m", 0.5)],
)
def test_pywps_sizes_count_megabytes(text: str, megabytes: float):
    """PyWPS reads a bare number as megabytes, hpc-wps as bytes: the converter writes units."""
    size = pywps_size(text)
    assert size == megabytes * 1024**2
    assert parse_size(size_text(size)) == size


@pytest.mark.parametrize(
    ("line", "where", "why", "default"),
    [
        ("[server]\nparallelprocesses = -1\n", "[server] parallelprocesses", "no limit", ("processing", "slots")),
        ("[server]\nmaxprocesses = -1\n", "[server] maxprocesses", "no limit", ("processing", "queue_length")),
        ("[server]\nmaxprocesses = 0\n", "[server] maxprocesses", "refuse every", ("processing", "queue_length")),
        ("[server]\nparallelprocesses = four\n", "[server] parallelprocesses", "whole number", ("processing", "slots")),
        ("[server]\nmaxsingleinputsize = 0\n", "[server] maxsingleinputsize", "no limit", ("inputs", "max_size")),
        ("[server]\nmaxsingleinputsize =\n", "[server] maxsingleinputsize", "not a PyWPS size", ("inputs", "max_size")),
        ("[server]\nmaxrequestsize = 0\n", "[server] maxrequestsize", "every POST", ("server", "max_request_size")),
        ("[server]\nurl = localhost:5000/wps\n", "[server] url", "not an http(s) URL", ("server", "url")),
        ("[logging]\nlevel = TRACE\n", "[logging] level", "not a logging level", ("logging", "level")),
        ("[logging]\ndatabase = sqlite:////var/lib/pywps/db.sqlite\n", "[logging] database", "SQLite", None),
        ("[logging]\ndatabase = mysql://wps@db/wps\n", "[logging] database", "not mysql", None),
        ("[processing]\nmode = detachprocessing\n", "[processing] mode", "apart from the web", ("processing", "mode")),
        ("[s3]\nbucket = outputs\nregion = eu-west-1\n", "[s3] bucket, region", "S3", None),
        ("[server]\nstoragetype = s3\n", "[server] storagetype", "S3", None),
        ("[server]\ncleantempdir = false\n", "[server] cleantempdir", "always removes", None),
        ("[server]\nworkdir = /tmp\n", "[server] workdir", "lasting", None),
        ("[server]\nallowedinputpaths = /data:/\n", "[server] allowedinputpaths", "any file", None),
        ("[grass]\ngisbase = /usr/lib/grass\n", "[grass] gisbase", "GRASS", None),
        ("[server]\nmaxoperations = 30\n", "[server] maxoperations", "not a PyWPS 4.8 setting", None),
    ],
)
def test_what_has_no_equivalent_is_listed_and_keeps_hpc_wps_default(
    tmp_path: Path, line: str, where: str, why: str, default: tuple[str, str] | None
):
    settings, notes, _ = _convert(tmp_path, line)
    assert why in _noted(notes, where)
    if default is not None:
        section, key = default
        assert getattr(getattr(settings, section), key) == getattr(getattr(load_settings(environ={}), section), key)


def test_interpolation_as_pywps_reads_it(tmp_path: Path):
    """``%(name)s`` from the section and [DEFAULT], ``${VAR}`` from the environment; a variable that is
    not set stays as written, and the note says the value holds it."""
    settings, notes, _ = _convert(
        tmp_path,
        "[DEFAULT]\nroot = /srv/bird\n[server]\nworkdir = %(root)s/work\nurl = http://${HOST}:${PORT}/wps\n",
        environ={"HOST": "wps.example.org"},
    )
    assert settings.server.workdir == Path("/srv/bird/work")
    assert settings.server.url == "http://wps.example.org:${PORT}/wps"
    assert "${PORT}" in _noted(notes, "[server] url")
    assert not [note for note in notes if "root" in note]  # [DEFAULT] keys serve interpolation only


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (None, "cannot read the PyWPS configuration"),
        ("url = http://localhost/wps\n", "not a valid INI file"),
        ("[server]\nurl = a\n[server]\nurl = b\n", "not a valid INI file"),
        ("[server]\nurl = http://%(nowhere)s/wps\n", "[server] url"),
    ],
)
def test_bad_input_is_a_clear_error_and_a_failing_exit(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str | None, expected: str
):
    path = tmp_path / "pywps.cfg"
    if text is not None:
        _write(path, text)
    with pytest.raises(SettingsError, match=re.escape(expected)):
        convert(read_pywps_config([path], {}))
    assert main(["config", "from-pywps", str(path)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert expected in captured.err


def _hpc_wps(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """The command, run from this tree as ``hpc-wps`` is."""
    return subprocess.run(
        [sys.executable, "-m", "app.cli", *args], cwd=ROOT, env=env, capture_output=True, text=True, check=False
    )


def test_the_command(tmp_path: Path):
    """``hpc-wps config from-pywps default.cfg pywps.cfg > hpc-wps.cfg``, then ``config check`` on it."""
    bird, site = _write(tmp_path / "default.cfg", BIRD_DEFAULTS), _write(tmp_path / "pywps.cfg", SITE)
    env = {"PATH": "/usr/bin:/bin", "WPS_HOST": "finch.example.org"}
    run = _hpc_wps("config", "from-pywps", str(bird), str(site), env=env)
    assert run.returncode == 0, run.stderr
    assert "12 notes" in run.stderr
    converted = _write(tmp_path / "hpc-wps.cfg", run.stdout)
    check = _hpc_wps("--config", str(converted), "config", "check", env=env)
    assert check.returncode == 0, check.stderr
    assert "WPS endpoint https://finch.example.org/wps" in check.stdout
