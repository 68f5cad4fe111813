"""A configuration whose executor lacks its Python packages is refused at start, naming the command that
installs them: ``hpc-wps config check`` and ``hpc-wps serve`` exit with the configuration error (code 2),
and serve starts nothing, instead of a dispatcher that dies on its first job and is restarted for ever.

"Not installed" is made by ``sys.modules[name] = None`` before the command runs: ``import name`` then
fails as for a package that is absent, and nothing else of the Python changes.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.xsd import ROOT

SLURM = "[processing]\nmode = scheduler\n"
DRMAA = "[processing]\nmode = scheduler\n[scheduler]\nsystem = drmaa\n"
DOCKER = "[processing]\nmode = docker\n"
SOME_SLURM = "[scheduler]\nscheduler_processes = sleep\n"  # mode local; one process on Slurm


def run_without(tmp_path: Path, config: str, missing: tuple[str, ...], *command: str) -> tuple[int, str]:
    """``hpc-wps --config FILE COMMAND`` in a Python without the packages ``missing``; its exit code and
    standard error. A command still running after 60 s (serve, started) is stopped with its children."""
    path = tmp_path / "hpc-wps.cfg"
    path.write_text(f"[server]\nworkdir = {tmp_path / 'var'}\n{config}", encoding="utf-8")
    code = (
        "import sys\n"
        f"for name in {missing!r}: sys.modules[name] = None\n"
        "from app.cli import main\n"
        f"sys.exit(main(['--config', {str(path)!r}, *{command!r}]))\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("HPC_WPS_")}
    process = subprocess.Popen(
        [sys.executable, "-c", code], cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        _out, err = process.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGTERM)
        _out, err = process.communicate(timeout=60)
        return -1, err
    return process.returncode, err


@pytest.mark.parametrize(
    ("config", "missing", "expected"),
    [
        (SLURM, ("dill",), "the slurm executor needs the Python package dill, which"),
        (SOME_SLURM, ("dill",), "the slurm executor needs the Python package dill, which"),
        (DRMAA, ("dill", "drmaa"), "the drmaa executor needs the Python packages dill and drmaa, which"),
        (DOCKER, ("docker",), "the docker executor needs the Python package docker, which"),
    ],
)
@pytest.mark.parametrize("command", [("config", "check"), ("serve", "--port", "0")])
def test_an_executor_without_its_packages_is_refused_at_start(tmp_path, config, missing, expected, command):
    code, err = run_without(tmp_path, config, missing, *command)
    extra = "docker" if config == DOCKER else "scheduler"
    assert code == 2, err
    assert err.startswith(f"hpc-wps: configuration error: {tmp_path / 'hpc-wps.cfg'}: {expected}"), err
    assert err.rstrip().endswith(f"does not have: pip install 'hpc-wps[{extra}]'"), err
    assert not (tmp_path / "var").exists()  # serve created no job table, started no dispatcher


def test_the_same_configuration_with_its_packages_is_valid(tmp_path):
    code, err = run_without(tmp_path, DRMAA, (), "config", "check")
    assert (code, err) == (0, "")


def test_packages_of_executors_the_configuration_does_not_use_are_not_needed(tmp_path):
    code, err = run_without(tmp_path, "[processing]\nmode = local\n", ("dill", "drmaa", "docker"), "config", "check")
    assert (code, err) == (0, "")
