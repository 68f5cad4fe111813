"""``hpc-wps config from-pywps``: a PyWPS 4.x configuration as hpc-wps's, with what has no equivalent.

:func:`read_pywps_config` reads PyWPS's files the way PyWPS does: later files override earlier ones (a
bird's packaged ``default.cfg``, then the site's ``pywps.cfg``), ``%(name)s`` and ``${VAR}`` are
expanded, also from the environment. :func:`convert` maps what they set onto hpc-wps's keys and says,
for every setting whose effect hpc-wps does not reproduce, why; :func:`document` writes both as one INI
text whose header comments are those notes, so that they stay with the file they explain. Keys PyWPS's
files leave unset take hpc-wps's defaults, not PyWPS's (``docs/migrating-from-pywps.md`` says which
differ).
"""

from __future__ import annotations

import configparser
import re
import textwrap
from collections import ChainMap
from collections.abc import Callable, Iterable, Mapping, MutableMapping
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from app.settings import SECTIONS, ServerSettings
from processes.fetch import FetchLimits
from processes.setting_fields import SettingsError
from scheduler.settings import ProcessingSettings

# posixpath.expandvars's variables, which PyWPS's EnvInterpolation expands; here from a given environment.
_VARIABLE = re.compile(r"\$(\w+|\{[^}]*\})", re.ASCII)
# pywps.configuration.get_size_mb: a number of megabytes, or of the unit given (powers of 1024).
_PYWPS_SIZE = re.compile(r"([0-9]*\.?[0-9]+)\s*(g|gb|m|mb|k|kb|b)?")
_MEGABYTES = {
    "g": 1024.0,
    "gb": 1024.0,
    "m": 1.0,
    "mb": 1.0,
    None: 1.0,
    "k": 1 / 1024,
    "kb": 1 / 1024,
    "b": 1 / 1024**2,
}
_BYTE_UNITS = (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024))
# logging's level names PyWPS accepts (getattr(logging, level)), as hpc-wps's four.
_LEVELS = {
    "DEBUG": "DEBUG",
    "NOTSET": "DEBUG",
    "INFO": "INFO",
    "WARNING": "WARNING",
    "WARN": "WARNING",
    "ERROR": "ERROR",
    "CRITICAL": "ERROR",
    "FATAL": "ERROR",
}
_TEMPORARY_DIRS = (Path("/tmp"), Path("/var/tmp"), Path("/dev/shm"))  # named to warn about them
PROCESSES_EXAMPLE = "mybird.processes:processes"
T = TypeVar("T")


class PywpsInterpolation(configparser.BasicInterpolation):
    """PyWPS's ``EnvInterpolation``: ``%(name)s`` from the section, ``[DEFAULT]`` and the environment
    (PyWPS hands ``os.environ`` to its parser as defaults), then ``$VAR`` and ``${VAR}`` from the
    environment; a variable that is not set stays as written."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        super().__init__()
        self._environ = dict(environ)
        self._lowered = {name.lower(): value for name, value in environ.items()}

    def before_get(
        self,
        parser: MutableMapping[str, Mapping[str, str]],
        section: str,
        option: str,
        value: str,
        defaults: Mapping[str, str],
    ) -> str:
        value = super().before_get(parser, section, option, value, ChainMap(dict(defaults), self._lowered))
        return _VARIABLE.sub(self._expand, value)

    def _expand(self, match: re.Match[str]) -> str:
        name = match.group(1).removeprefix("{").removesuffix("}")
        return self._environ.get(name, match.group(0))


def read_pywps_config(paths: Iterable[str | Path], environ: Mapping[str, str]) -> configparser.ConfigParser:
    """PyWPS's configuration from ``paths``, each overriding the ones before, as PyWPS reads them.

    Unlike PyWPS, which skips a file it cannot read, a file named here must be there: the user named it.
    """
    parser = configparser.ConfigParser(interpolation=PywpsInterpolation(environ))
    for path in paths:
        try:
            with open(path, encoding="utf-8") as handle:
                parser.read_file(handle, source=str(path))
        except OSError as exc:
            raise SettingsError(f"{path}: cannot read the PyWPS configuration: {exc.strerror}") from None
        except (configparser.Error, UnicodeDecodeError) as exc:
            raise SettingsError(f"{path}: not a valid INI file: {exc}") from None
    return parser


def pywps_size(text: str) -> int:
    """Bytes of a PyWPS size (``200mb``, ``1.5g``, ``512k``; a bare number counts megabytes)."""
    match = _PYWPS_SIZE.fullmatch(text.strip().lower())
    if not match:
        raise ValueError(f"{text!r} is not a PyWPS size such as 200mb")
    return round(float(match.group(1)) * _MEGABYTES[match.group(2)] * 1024**2)


def size_text(size: int) -> str:
    """``size`` bytes as hpc-wps writes sizes: in the largest binary unit that holds it whole."""
    for unit, factor in _BYTE_UNITS:
        if size and size % factor == 0:
            return f"{size // factor}{unit}"
    return str(size)


class _Target:
    """The hpc-wps keys being written, each with the comment saying where it comes from, and the notes."""

    def __init__(self) -> None:
        self.values: dict[str, dict[str, tuple[str, str]]] = {}  # section -> key -> (value, comment)
        self.sources: set[tuple[str, str]] = set()  # the PyWPS (section, key) something was written from
        self._notes: dict[tuple[str, str], list[str]] = {}  # (PyWPS section, why) -> its keys, in order

    def set(self, section: str, key: str, value: str, source: tuple[str, str], remark: str = "") -> None:
        """Write ``value`` as ``[section] key``, from PyWPS's ``source`` section and key."""
        self.write(section, key, value, " ".join(("PyWPS [{}] {}".format(*source), remark)).strip())
        self.sources.add(source)

    def write(self, section: str, key: str, value: str, comment: str) -> None:
        self.values.setdefault(section, {})[key] = (value, comment)

    def note(self, section: str, key: str, text: str) -> None:
        """``key`` of PyWPS's ``section`` did not carry over as it was, because ``text`` (keys of one
        section with the same reason are listed together; an empty key notes the whole section)."""
        keys = self._notes.setdefault((section, text), [])
        if key:
            keys.append(key)

    @property
    def notes(self) -> list[str]:
        return [
            f"[{section}]{' ' + ', '.join(keys) if keys else ''}: {text}"
            for (section, text), keys in self._notes.items()
        ]

    def text(self) -> str:
        lines: list[str] = []
        for section in SECTIONS:
            keys = self.values.get(section, {})
            if not keys:
                continue
            lines.append(f"[{section}]")
            for key, (value, comment) in keys.items():
                continued = "\n    ".join(value.splitlines())  # an INI value's further lines are indented
                lines.extend((f"# {comment}", f"{key} = {continued}"))
            if section == "processing" and "processes" not in keys:
                lines.append("# your processes, as module:attribute (see docs/migrating-from-pywps.md):")
                lines.append(f"# processes = {PROCESSES_EXAMPLE}")
            lines.append("")
        return "\n".join(lines)


# A rule reads one PyWPS key: its value, the section and key it comes from, and the target to write.
Rule = Callable[[str, str, str, _Target], None]


def _copy(target_section: str, target_key: str) -> Rule:
    def rule(value: str, section: str, key: str, out: _Target) -> None:
        out.set(target_section, target_key, value, (section, key))

    return rule


def _no_equivalent(why: str, unless: Callable[[str], bool] = lambda _value: False) -> Rule:
    """A key hpc-wps has no equivalent for; ``unless`` the value asks for what hpc-wps does anyway."""

    def rule(value: str, section: str, key: str, out: _Target) -> None:
        if not unless(value):
            out.note(section, key, why)

    return rule


def _parsed(parse: Callable[[str], T], what: str, value: str, section: str, key: str, out: _Target) -> T | None:
    """``value`` read by ``parse``; None, and a note that it is not ``what``, when it cannot be read."""
    try:
        return parse(value)
    except (ValueError, ArgumentError):
        out.note(section, key, f"{value!r} is not {what}; not carried over")
        return None


def _size(target_section: str, target_key: str, default: int, zero_means: str) -> Rule:
    def rule(value: str, section: str, key: str, out: _Target) -> None:
        size = _parsed(pywps_size, "a PyWPS size such as 200mb", value, section, key, out)
        if size is None:
            return
        if size == 0:
            out.note(
                section,
                key,
                f"0 {zero_means}; hpc-wps always has a limit: [{target_section}] {target_key} stays at its "
                f"default, {size_text(default)}",
            )
            return
        out.set(target_section, target_key, size_text(size), (section, key))

    return rule


def _count(target_section: str, target_key: str, default: int, zero: str) -> Rule:
    """A positive number; PyWPS's -1 (no limit) and 0 (``zero`` says what it did) keep hpc-wps's default."""

    def rule(value: str, section: str, key: str, out: _Target) -> None:
        number = _parsed(int, "a whole number", value, section, key, out)
        if number is None:
            return
        if number < 1:
            meaning = "means no limit to PyWPS; hpc-wps needs one" if number == -1 else zero
            out.note(
                section, key, f"{number} {meaning}: [{target_section}] {target_key} stays at its default, {default}"
            )
            return
        out.set(target_section, target_key, str(number), (section, key))

    return rule


def _url(value: str, section: str, key: str, out: _Target) -> None:
    if not re.match(r"https?://[^/]", value):
        out.note(section, key, f"{value!r} is not an http(s) URL; [server] url is left to http://HOST:PORT/wps")
        return
    out.set("server", "url", value, (section, key))


def _workdir(value: str, section: str, key: str, out: _Target) -> None:
    out.set("server", "workdir", value, (section, key))
    if Path(value) in _TEMPORARY_DIRS:
        out.note(
            section,
            key,
            f"carried over as [server] workdir, where hpc-wps keeps not only temporary files but its SQLite job "
            f"table and every job's outputs until they expire: a directory the system cleans ({value}) loses "
            "them; choose a lasting one",
        )


def _language(value: str, section: str, key: str, out: _Target) -> None:
    languages = [language.strip() for language in value.split(",") if language.strip()]
    if not languages:
        return
    out.set("server", "language", languages[0], (section, key))
    if len(languages) > 1:
        out.note(
            section,
            key,
            f"hpc-wps serves one language, {languages[0]}: {', '.join(languages[1:])} and the processes' "
            "translations are not offered",
        )


def _processes(value: str, section: str, key: str, out: _Target) -> None:
    """PyWPS's documented ``myapp.processes.processes``, as hpc-wps's ``module:attribute``."""
    module, dot, attribute = value.strip().rpartition(".")
    if ":" in value:
        path = value.strip()
    elif dot and module and attribute:
        path = f"{module}:{attribute}"
    else:
        out.note(section, key, f"{value!r} is not module.attribute; not carried over")
        return
    out.set("processing", "processes", path, (section, key))


def _allowed_paths(value: str, section: str, key: str, out: _Target) -> None:
    """PyWPS's ``:``-separated paths as hpc-wps's comma-separated directories."""
    paths = [path.strip() for path in value.split(":") if path.strip()]
    unusable = [path for path in paths if "," in path]
    if unusable:
        out.note(section, key, f"{', '.join(unusable)}: a comma cannot be written in [inputs] allowed_dirs; left out")
    paths = [path for path in paths if path not in unusable]
    if not paths:
        return
    out.set("inputs", "allowed_dirs", ", ".join(paths), (section, key))
    if any(Path(path) == Path("/") for path in paths):
        out.note(
            section,
            key,
            "carried over as it is, but / lets every client read, through file:// inputs, any file the "
            "service can read (as PyWPS did): name the data directories instead",
        )


def _mode(value: str, section: str, key: str, out: _Target) -> None:
    """PyWPS compares the mode as written: anything but ``scheduler`` and ``detachprocessing`` is its
    multiprocessing, which is hpc-wps's local pool (the default)."""
    if value == "scheduler":
        out.set("processing", "mode", "scheduler", (section, key))
        out.set("scheduler", "system", "drmaa", (section, key), "= scheduler submits through DRMAA")
    elif value == "detachprocessing":
        out.note(
            section,
            key,
            "hpc-wps's local pool (mode = local) runs every job in a worker process apart from the web "
            "workers, which is what detachprocessing was for",
        )
    elif value not in ("default", "multiprocessing"):
        out.note(section, key, f"{value!r} is not a PyWPS mode (PyWPS ran such jobs with multiprocessing); local")


def _native(value: str, section: str, key: str, out: _Target) -> None:
    if not value.strip():
        return
    out.set("scheduler", "native", value.strip(), (section, key))
    out.note(
        section,
        key,
        "carried over as [scheduler] native, which hpc-wps passes after its own resource requests ([scheduler] "
        "queue, cores, memory, walltime; on Grid Engine -q, -pe, -l h_vmem, -l h_rt), and a later request of "
        "the same resource wins: move such requests into those keys, or hpc-wps's limits on what a request "
        "may ask for, and its reading of a kill at the time limit, will not match the job",
    )


def _level(value: str, section: str, key: str, out: _Target) -> None:
    level = _LEVELS.get(value.strip().upper())
    if level is None:
        out.note(section, key, f"{value!r} is not a logging level; not carried over")
        return
    out.set("logging", "level", level, (section, key))
    if level != value.strip().upper():
        out.note(section, key, f"hpc-wps's levels are DEBUG, INFO, WARNING and ERROR: {value} became {level}")


def _database(value: str, section: str, key: str, out: _Target) -> None:
    """PyWPS's request log is its job store: a PostgreSQL one becomes hpc-wps's job table's home."""
    url = _parsed(make_url, "a database URL", value, section, key, out)
    if url is None:
        return
    backend = url.get_backend_name()
    if backend in ("postgresql", "postgres"):
        out.set("database", "url", url.set(drivername="postgresql+psycopg").render_as_string(False), (section, key))
        out.note(
            section,
            key,
            "carried over as [database] url (driver psycopg 3: pip install 'hpc-wps[postgres]'); `hpc-wps db "
            "upgrade` creates hpc-wps's own tables there beside PyWPS's, whose job records are not carried over",
        )
    elif backend == "sqlite":
        out.note(
            section,
            key,
            "PyWPS's SQLite job log is not carried over: hpc-wps keeps its own job table, SQLite in [server] "
            "workdir unless [database] url names PostgreSQL (needed for dispatchers on several hosts)",
        )
    else:
        out.note(section, key, f"hpc-wps's job table runs on SQLite or PostgreSQL, not {backend}; not carried over")


def _false(value: str) -> bool:
    return value.strip().lower() != "true"


def _in(*values: str) -> Callable[[str], bool]:
    return lambda value: value.strip().lower() in values


_SERVER_URL_OUTPUTS = "hpc-wps serves a job's output files itself, under [server] url: URL/jobs/JOB/outputs/FILE"
_RULES: dict[str, dict[str, Rule]] = {
    "server": {
        "url": _url,
        "language": _language,
        "workdir": _workdir,
        "maxsingleinputsize": _size("inputs", "max_size", FetchLimits.max_size, "means no limit to PyWPS"),
        "maxrequestsize": _size(
            "server",
            "max_request_size",
            ServerSettings.max_request_size,
            "means no limit in PyWPS's documentation (PyWPS 4.8 then refuses every POST body)",
        ),
        "parallelprocesses": _count("processing", "slots", ProcessingSettings.slots, "runs no job at all in PyWPS"),
        "maxprocesses": _count(
            "processing",
            "queue_length",
            ProcessingSettings.queue_length,
            "keeps no job waiting in PyWPS; hpc-wps counts every job not started yet, so 0 would refuse every "
            "asynchronous Execute",
        ),
        "allowedinputpaths": _allowed_paths,
        "processes": _processes,
        "outputurl": _no_equivalent(
            f"{_SERVER_URL_OUTPUTS}; no web server of its own is needed for outputs (a process reading "
            "outputurl gets the job's)"
        ),
        "outputpath": _no_equivalent(
            "a job's outputs stay in its job directory under [server] workdir until the job expires "
            "([processing] retention) or is dismissed (a process reading outputpath gets that directory); "
            "files PyWPS left in outputpath are not carried over"
        ),
        "encoding": _no_equivalent("hpc-wps writes every document in UTF-8", unless=_in("utf-8", "utf8")),
        "sethomedir": _no_equivalent("hpc-wps leaves HOME as it is for a job", unless=_false),
        "cleantempdir": _no_equivalent(
            "hpc-wps always removes a job's working directory when the job ends (its outputs stay until it expires)",
            unless=lambda value: value.strip().lower() != "false",
        ),
        "storagetype": _no_equivalent(
            "outputs stay in the job directories and are served from there; S3 storage is not supported",
            unless=_in("file"),
        ),
        "storage_copy_function": _no_equivalent(
            "hpc-wps has PyWPS copy output files into the job's output directory", unless=_in("copy")
        ),
        "default_mimetype": _no_equivalent("hpc-wps answers WPS requests in XML", unless=_in("text/xml")),
        "json_indent": _no_equivalent("hpc-wps answers WPS requests in XML"),
        "temp_path": _no_equivalent("not read by PyWPS 4.8 either; ignored"),
        "processes_path": _no_equivalent("not read by PyWPS 4.8 either; ignored"),
    },
    "processing": {
        "mode": _mode,
        "drmaa_native_specification": _native,
        "path": _no_equivalent(
            "batch jobs run `python -m scheduler.run_job`, not PyWPS's joblauncher: set [scheduler] python to "
            "this directory's python if the nodes need another interpreter than the service's"
        ),
    },
    "logging": {
        "level": _level,
        "file": _copy("logging", "file"),
        "database": _database,
        "format": _no_equivalent(
            "hpc-wps writes its own lines (time, pid, level, logger, job id), or JSON ([logging] format = json)"
        ),
        "prefix": _no_equivalent("PyWPS's table names; hpc-wps's job table has its own"),
        "schema": _no_equivalent("PyWPS's table names; hpc-wps's job table has its own"),
        "db_echo": _no_equivalent("hpc-wps does not log SQL statements"),
    },
    "metadata:main": {
        "identification_title": _copy("metadata", "title"),
        "identification_abstract": _copy("metadata", "abstract"),
        "identification_keywords": _copy("metadata", "keywords"),
        "identification_fees": _copy("metadata", "fees"),
        "identification_accessconstraints": _copy("metadata", "access_constraints"),
        "provider_name": _copy("metadata", "provider_name"),
        "provider_url": _copy("metadata", "provider_site"),
        "contact_name": _copy("metadata", "contact_name"),
        "contact_email": _copy("metadata", "contact_email"),
    }
    | dict.fromkeys(
        (
            "identification_keywords_type",
            "identification_profile",
            "contact_position",
            "contact_address",
            "contact_city",
            "contact_stateorprovince",
            "contact_postalcode",
            "contact_country",
            "contact_phone",
            "contact_fax",
            "contact_url",
            "contact_hours",
            "contact_instructions",
            "contact_role",
        ),
        _no_equivalent(
            "hpc-wps's GetCapabilities shows a title, abstract, keywords, fees, access constraints, the "
            "provider's name and site, and a contact's name and e-mail, no more"
        ),
    ),
    "grass": {"gisbase": _no_equivalent("hpc-wps prepares no GRASS GIS session for a process")},
    "jobqueue": {
        "pause": _no_equivalent("the dispatcher starts a waiting job as soon as a slot is free, without a pause")
    },
    "s3": dict.fromkeys(
        ("bucket", "prefix", "public", "encrypt", "region"),
        _no_equivalent("outputs stay in the job directories and are served from there; S3 storage is not supported"),
    ),
}
_RAW = {("logging", "format")}  # pywps.configuration.RAW_OPTIONS: read as written, never interpolated
_FOREIGN_SECTION = (
    "not a PyWPS section: your processes read it (pywps.configuration), hpc-wps does not; keep it in the "
    "PyWPS configuration file the processes read (PYWPS_CFG, see docs/migrating-from-pywps.md)"
)


def _value(parser: configparser.ConfigParser, section: str, key: str) -> str:
    try:
        return parser.get(section, key, raw=(section, key) in _RAW)
    except configparser.Error as exc:
        raise SettingsError(f"PyWPS configuration [{section}] {key}: {exc}") from None


def convert(parser: configparser.ConfigParser) -> tuple[str, list[str]]:
    """hpc-wps's INI text for what PyWPS's ``parser`` sets, and a note on each setting not carried over."""
    out = _Target()
    for section in parser.sections():
        rules = _RULES.get(section)
        if rules is None:
            out.note(section, "", _FOREIGN_SECTION)
            continue
        for key in parser.options(section):
            rule = rules.get(key)
            if rule is None:
                if key not in parser.defaults():  # [DEFAULT]'s keys are there to be interpolated
                    out.note(section, key, "not a PyWPS 4.8 setting; ignored")
                continue
            value = _value(parser, section, key)
            rule(value, section, key, out)
            if "$" in parser.get(section, key, raw=True) and (section, key) in out.sources:
                out.note(
                    section,
                    key,
                    f"written as the environment expands it now ({value}): hpc-wps expands no variables in its "
                    "file, an environment variable HPC_WPS_<SECTION>_<KEY> overrides a key instead",
                )
    out.write("processing", "demo_processes", "false", "PyWPS serves no demo processes")
    return out.text(), out.notes


def document(text: str, notes: list[str], sources: Iterable[Any]) -> str:
    """The converted configuration with the notes as comments at its top, where whoever reads the file
    later (and a review of it) finds them."""
    names = ", ".join(str(source) for source in sources)
    header = [
        f"# hpc-wps configuration converted by `hpc-wps config from-pywps` from PyWPS's {names}.",
        "# Keys not set here take hpc-wps's defaults (`hpc-wps config reference` lists every key).",
        "#",
    ]
    if notes:
        header.append("# What did not carry over as it was, and why:")
        for note in notes:
            wrapped = textwrap.wrap(
                note, width=100, initial_indent="# - ", subsequent_indent="#   ", break_on_hyphens=False
            )
            header.extend(wrapped)
    else:
        header.append("# Every setting was carried over.")
    return "\n".join(header) + "\n\n" + text
