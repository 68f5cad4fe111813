"""Starting, probing, measuring and stopping the servers under test.

Standard library only. Every server is started in its own session (so its
own process group) and `stop_all()` kills every group that was started,
whatever happened; run.py calls it from a `finally`, atexit and signal
handlers.
"""

import atexit
import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
REPO_DIR = os.path.dirname(BENCH_DIR)
PYWPS_VENV = os.path.join(BENCH_DIR, ".venv-pywps")
REPO_VENV = os.path.join(REPO_DIR, ".venv")

_STARTED = []  # Server objects, in start order


def connection_split(port):
    """How the established connections to ``port`` on this machine are spread over the processes that
    hold them, largest share first: "3-1" (two workers), "4" (all on one). Read with ``ss``."""
    out = subprocess.run(
        ["ss", "-tnpH", "state", "established", f"( sport = :{port} )"], capture_output=True, text=True, check=True
    ).stdout
    shares = {}
    for pid in re.findall(r"pid=(\d+)", out):
        shares[pid] = shares.get(pid, 0) + 1
    return "-".join(str(n) for n in sorted(shares.values(), reverse=True)) or "0"


def free_port():
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def base_env(home):
    """A small, explicit environment: nothing from the caller's leaks in
    (PyWPS even uses os.environ as its config parser's defaults)."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
        "HOME": home,
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "PYTHONDONTWRITEBYTECODE": "1",
        "TMPDIR": home,
    }
    return env


class Server:
    """One server under test: a command started in its own process group."""

    def __init__(self, name, cmd, cwd, env, endpoint, tmpdir):
        self.name = name
        self.cmd = cmd
        self.cwd = cwd
        self.env = env
        self.endpoint = endpoint  # e.g. http://127.0.0.1:PORT/wps
        self.tmpdir = tmpdir
        self.log_path = os.path.join(tmpdir, f"{name}-server.log")
        self.proc = None
        self.sidecars = []  # commands started after the server, in its process group
        self.sidecar_procs = []

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def start(self):
        with open(self.log_path, "ab") as log:
            # Each command in its own session, hence its own process group.
            self.proc = subprocess.Popen(
                self.cmd,
                cwd=self.cwd,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )
            _STARTED.append(self)
            for cmd in self.sidecars:
                self.sidecar_procs.append(
                    subprocess.Popen(
                        cmd,
                        cwd=self.cwd,
                        env=self.env,
                        stdin=subprocess.DEVNULL,
                        stdout=log,
                        stderr=subprocess.STDOUT,
                        start_new_session=True,
                        preexec_fn=_die_with_parent,
                    )
                )
        return self

    def url(self, query):
        return f"{self.endpoint}?{query}"

    def wait_ready(self, timeout=60.0, query="service=WPS&request=GetCapabilities"):
        """Poll GetCapabilities until it answers 200 with a Capabilities
        document (bounded by `timeout` seconds)."""
        deadline = time.monotonic() + timeout
        last = "no answer"
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"{self.name} exited with code {self.proc.returncode} before it was ready; "
                    f"log {self.log_path}:\n{self.log_tail()}"
                )
            try:
                with urllib.request.urlopen(self.url(query), timeout=5) as r:
                    body = r.read()
                    if r.status == 200 and b"Capabilities" in body:
                        return time.monotonic()
                    last = f"HTTP {r.status}"
            except urllib.error.HTTPError as e:
                last = f"HTTP {e.code}"
            except (OSError, urllib.error.URLError) as e:
                last = str(e)
            time.sleep(0.2)
        raise RuntimeError(
            f"{self.name} not ready after {timeout:.0f}s ({last}); log {self.log_path}:\n{self.log_tail()}"
        )

    def log_tail(self, n=30):
        try:
            with open(self.log_path, "rb") as f:
                return b"\n".join(f.read().splitlines()[-n:]).decode("utf-8", "replace")
        except OSError:
            return ""

    def rss_bytes(self):
        """Sum of VmRSS of the server's process tree (gunicorn master, its
        workers, and anything they started), in bytes."""
        return tree_rss(self.pid) if self.proc and self.proc.poll() is None else 0

    def stop(self, grace=10.0):
        """SIGTERM, then SIGKILL, to the process group of the server and of
        each sidecar (pgid == pid of each leader)."""
        for proc in [*self.sidecar_procs, self.proc]:
            if proc is not None:
                _kill_group(proc, grace)
        if self in _STARTED:
            _STARTED.remove(self)


def _kill_group(proc, grace):
    pgid = proc.pid
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            break
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            proc.poll()  # reap the leader
            if not _group_alive(pgid):
                break
            time.sleep(0.1)
        if not _group_alive(pgid):
            break
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=1)
    # A last SIGKILL for stragglers left in the group (e.g. job processes).
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)


def _die_with_parent():
    """In the child before exec: SIGTERM it when the harness dies, even by
    SIGKILL (Linux PR_SET_PDEATHSIG), so that no server outlives a run."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG
    except Exception:
        pass


def _group_alive(pgid):
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def stop_all():
    for server in list(reversed(_STARTED)):
        try:
            server.stop()
        except Exception as e:  # keep stopping the others
            print(f"warning: stopping {server.name}: {e}", file=sys.stderr)


atexit.register(stop_all)


# ---------------------------------------------------------------- RSS ----


def _children_map():
    children = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        # the command name may contain spaces/parens: ppid follows the last ')'
        rest = stat[stat.rfind(b")") + 2 :].split()
        children.setdefault(int(rest[1]), []).append(int(entry))
    return children


def tree_pids(root):
    children = _children_map()
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, ()))
    return out


def vm_rss(pid):
    try:
        with open(f"/proc/{pid}/status", "rb") as f:
            for line in f:
                if line.startswith(b"VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def tree_rss(root):
    return sum(vm_rss(p) for p in tree_pids(root))


# ----------------------------------------------------------- servers ----


def make_pywps(tmpdir, mode="multiprocessing", queue_pause=0.5, workers=2):
    """PyWPS 4.8.1 from bench/.venv-pywps under gunicorn (sync workers).
    `queue_pause`: seconds between the queue drainer's looks (0 = none),
    see pywps_app/drainer.py."""
    gunicorn = os.path.join(PYWPS_VENV, "bin", "gunicorn")
    if not os.path.exists(gunicorn):
        raise RuntimeError(f"{gunicorn} is missing: run bench/setup_pywps.sh first")
    port = free_port()
    wdir = os.path.join(tmpdir, "pywps")
    for sub in ("work", "outputs", "tmp"):
        os.makedirs(os.path.join(wdir, sub), exist_ok=True)
    env = base_env(wdir)
    env.update(
        {
            "PYWPS_CFG": os.path.join(BENCH_DIR, "pywps_app", "pywps.cfg"),
            "PYWPS_BENCH_PORT": str(port),
            "PYWPS_BENCH_TMP": wdir,
            "PYWPS_BENCH_MODE": mode,
            "PYWPS_BENCH_QUEUE_PAUSE": str(queue_pause),
        }
    )
    cmd = [
        gunicorn,
        "--workers",
        str(workers),
        "--worker-class",
        "sync",
        "--bind",
        f"127.0.0.1:{port}",
        # bigoutput's raw response takes PyWPS longer than the default 30s
        "--timeout",
        "600",
        # as ours: gunicorn 27's control socket is not wanted here
        "--no-control-socket",
        "--chdir",
        BENCH_DIR,
        "pywps_app.wsgi:application",
    ]
    server = Server("pywps", cmd, BENCH_DIR, env, f"http://127.0.0.1:{port}/wps", wdir)
    if queue_pause > 0:
        server.sidecars.append([os.path.join(PYWPS_VENV, "bin", "python"), "-m", "pywps_app.drainer"])
    return server


def write_ours_config(wdir, port, processing=""):
    os.makedirs(os.path.join(wdir, "work"), exist_ok=True)
    path = os.path.join(wdir, "hpc-wps.ini")
    db = os.path.join(wdir, "jobs.sqlite")
    with open(path, "w") as f:
        f.write(
            "[server]\n"
            "url = http://127.0.0.1:{port}/wps\n"
            "workdir = {work}\n"
            "\n"
            "[database]\n"
            "url = sqlite:///{db}\n"
            "\n"
            "[processing]\n"
            "mode = local\n"
            "slots = 2\n"
            "queue_length = 2000\n".format(port=port, work=os.path.join(wdir, "work"), db=db)
            + processing
        )
    return path, f"sqlite:///{db}"


def make_ours(tmpdir, name="ours", workers=2, processing="", pythonpath=None):
    """hpc-wps as `.venv/bin/hpc-wps serve` from the repository root; `processing`: more lines for its
    [processing] section; `pythonpath`: where further processes it names are imported from."""
    exe = os.path.join(REPO_VENV, "bin", "hpc-wps")
    if not os.path.exists(exe):
        raise RuntimeError(f"{exe} is missing: install the project into .venv first (e.g. .venv/bin/pip install -e .)")
    port = free_port()
    wdir = os.path.join(tmpdir, name)
    os.makedirs(wdir, exist_ok=True)
    cfg, db_url = write_ours_config(wdir, port, processing)
    env = base_env(wdir)
    env["HPC_WPS_CONFIG"] = cfg
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    cmd = [exe, "serve", "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers)]
    server = Server(name, cmd, REPO_DIR, env, f"http://127.0.0.1:{port}/wps", wdir)
    server.db_url = db_url
    return server


def make_bare_flask(tmpdir, source_endpoint=None, fixed_sizes=None, workers=2, copy=None):
    """bench/bare_flask.py with the repository's .venv (Flask + gunicorn):
    the cached bytes of `source_endpoint` (our server), or fixed bytes of
    `fixed_sizes` = (capabilities_bytes, describe_bytes)."""
    python = os.path.join(REPO_VENV, "bin", "python")
    if not os.path.exists(python):
        python = sys.executable
    port = free_port()
    wdir = os.path.join(tmpdir, "bare")
    os.makedirs(wdir, exist_ok=True)
    cmd = [
        python,
        os.path.join(BENCH_DIR, "bare_flask.py"),
        "--port",
        str(port),
        "--workers",
        str(workers),
        "--cache-dir",
        wdir,
    ]
    if copy:  # the bytes of one URL, served at /processes
        cmd += ["--copy", copy]
    elif source_endpoint:
        cmd += ["--source", source_endpoint]
    else:
        caps, desc = fixed_sizes or (4096, 4096)
        cmd += ["--fixed", f"{caps},{desc}"]
    env = base_env(wdir)
    return Server("bare-flask", cmd, BENCH_DIR, env, f"http://127.0.0.1:{port}/wps", wdir)


PYGEOAPI_VENV = os.path.join(BENCH_DIR, ".venv-pygeoapi")


def make_pygeoapi(tmpdir, workers=2, threads=16):
    """pygeoapi (bench/.venv-pygeoapi, see setup_pygeoapi.sh) with its hello-world process and TinyDB job
    manager, under the gunicorn settings of `hpc-wps serve`; its API root is the endpoint."""
    bin_dir = os.path.join(PYGEOAPI_VENV, "bin")
    if not os.path.exists(os.path.join(bin_dir, "gunicorn")):
        raise RuntimeError(f"{PYGEOAPI_VENV} is missing: bash bench/setup_pygeoapi.sh")
    port = free_port()
    wdir = os.path.join(tmpdir, "pygeoapi")
    os.makedirs(os.path.join(wdir, "outputs"), exist_ok=True)
    with open(os.path.join(BENCH_DIR, "pygeoapi_app", "config.template.yml")) as f:
        config = f.read().replace("@PORT@", str(port)).replace("@WORKDIR@", wdir)
    config_path = os.path.join(wdir, "config.yml")
    with open(config_path, "w") as f:
        f.write(config)
    env = base_env(wdir)
    env["PYGEOAPI_CONFIG"] = config_path
    env["PYGEOAPI_OPENAPI"] = os.path.join(wdir, "openapi.yml")
    subprocess.run(
        [
            os.path.join(bin_dir, "pygeoapi"),
            "openapi",
            "generate",
            config_path,
            "--output-file",
            env["PYGEOAPI_OPENAPI"],
        ],
        env=env,
        cwd=wdir,
        check=True,
        capture_output=True,
    )
    cmd = [
        os.path.join(bin_dir, "gunicorn"),
        "--worker-class",
        "gthread",
        "--workers",
        str(workers),
        "--threads",
        str(threads),
        "--timeout",
        "30",
        "--no-control-socket",
        "--bind",
        f"127.0.0.1:{port}",
        "pygeoapi.flask_app:APP",
    ]
    server = Server("pygeoapi", cmd, wdir, env, f"http://127.0.0.1:{port}", wdir)
    server.jobs_db = os.path.join(wdir, "jobs.db")
    return server
