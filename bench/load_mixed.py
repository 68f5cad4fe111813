"""Mixed production load: many clients at once, every kind of request, bounded in time, loopback only.

Run it from the repository root against a running ``hpc-wps serve``:

    .venv/bin/python bench/load_mixed.py --url http://127.0.0.1:5000/wps --clients 50 --duration 60 \\
        --server-log var/server.log --json /tmp/load.json

Each client loops until the duration is over: it picks a request kind by weight (GetCapabilities,
DescribeProcess, synchronous Execute, asynchronous Execute, GetStatus, output download), in WPS 1.0.0
or 2.0 at random, checks the answer (a greeting names the client that asked, a downloaded output holds
the word counts of the text that client sent), and records the HTTP status and the latency. Every
accepted job is remembered; when the load stops each one is followed until it ends, within
``--drain`` seconds, so lost jobs are counted, not guessed. The figures (requests and rate per kind,
p50/p99, 5xx answers, socket errors, jobs accepted and ended, "database is locked" and tracebacks in
the server's log) are printed and, with ``--json``, written as JSON. Standard library only, like
``load.py``, whose HTTP and parsing helpers it uses.
"""

from __future__ import annotations

import argparse
import collections
import json
import random
import re
import sys
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path

from load import _check_loopback, http_request, job_state, percentile

KINDS = ("capabilities", "describe", "execute_sync", "execute_async", "status", "download")
# Reads dominate, as with real clients that poll; a tenth of the requests start a job.
DEFAULT_WEIGHTS = {
    "capabilities": 15,
    "describe": 15,
    "execute_sync": 15,
    "execute_async": 10,
    "status": 35,
    "download": 10,
}
SAMPLES = 5  # problem answers kept per kind, for the report
LOCKED = "database is locked"

W2 = 'xmlns:wps="http://www.opengis.net/wps/2.0" xmlns:ows="http://www.opengis.net/ows/2.0"'
XML = {"Content-Type": "text/xml"}
_JOB_ID_20 = re.compile(rb"<(?:\w+:)?JobID>([^<]+)</")
_STATUS_20 = re.compile(rb"<(?:\w+:)?Status>(\w+)</")
_REFERENCE = re.compile(rb'<(?:\w+:)?Reference\b[^>]*\bhref="([^"]+/outputs/[^"]+)"')
_WORD = re.compile(r"\w+")
STATES_20 = {"Succeeded": "succeeded", "Failed": "failed", "Dismissed": "dismissed"}


def execute20(identifier: str, inputs: dict[str, str], output: str, mode: str, response: str) -> bytes:
    data = "".join(
        f'<wps:Input id="{k}"><wps:Data><wps:LiteralValue>{v}</wps:LiteralValue></wps:Data></wps:Input>'
        for k, v in inputs.items()
    )
    return (
        f'<wps:Execute service="WPS" version="2.0.0" mode="{mode}" response="{response}" {W2}>'
        f'<ows:Identifier>{identifier}</ows:Identifier>{data}<wps:Output id="{output}" transmission="value"/>'
        "</wps:Execute>"
    ).encode()


def word_counts(text: str) -> dict[str, int]:
    """What ``wordcounter`` must answer for ``text``."""
    return dict(collections.Counter(_WORD.findall(text.lower())))


@dataclass
class Job:
    job_id: str
    expected: dict[str, int] | None = None  # word counts, for wordcounter jobs
    state: str | None = None  # succeeded, failed or dismissed once seen ended
    output_url: str | None = None


@dataclass
class Answer:
    status: int | None  # None: no answer at all
    body: bytes
    sent: float  # Unix time the request left
    seconds: float
    error: str | None = None


@dataclass
class KindTally:
    latencies: list[float] = field(default_factory=list)
    http_5xx: int = 0
    unexpected: int = 0  # an answer that is not 5xx but not what this request must get either
    errors: int = 0  # no answer at all: refused, reset, timed out
    samples: list[str] = field(default_factory=list)


class Book:
    """What every client shares: the tallies and the accepted jobs, under one lock."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.tallies = {kind: KindTally() for kind in KINDS}
        self.jobs: dict[str, Job] = {}
        # Every 5xx and unanswered request: kind, when it was sent and answered (Unix time), status, text.
        self.failures: list[dict[str, object]] = []

    def record(self, kind: str, answer: Answer, problem: str | None) -> None:
        status = answer.status
        with self.lock:
            tally = self.tallies[kind]
            tally.latencies.append(answer.seconds)
            if status is None:
                tally.errors += 1
            elif status >= 500:
                tally.http_5xx += 1
            elif problem:
                tally.unexpected += 1
            if problem and len(tally.samples) < SAMPLES:
                tally.samples.append(f"HTTP {status}: {problem}")
            if status is None or status >= 500:
                failure = {"sent": answer.sent, "at": answer.sent + answer.seconds, "status": status, "what": problem}
                self.failures.append({"kind": kind, **failure})

    def add_job(self, job: Job) -> None:
        with self.lock:
            self.jobs[job.job_id] = job

    def pick_job(self, rng: random.Random) -> Job | None:
        with self.lock:
            return rng.choice(list(self.jobs.values())) if self.jobs else None

    def pick_output(self, rng: random.Random) -> Job | None:
        with self.lock:
            ready = [j for j in self.jobs.values() if j.output_url]
            return rng.choice(ready) if ready else None

    def unended(self) -> list[Job]:
        with self.lock:
            return [j for j in self.jobs.values() if j.state is None]


def describe_answer(body: bytes) -> str:
    """An OWS exception as its code and text; anything else as its first bytes."""
    code = re.search(rb'exceptionCode="([^"]*)"', body)
    text = re.search(rb"<(?:\w+:)?ExceptionText>([^<]*)<", body)
    if code:
        return f"{code.group(1).decode()}: {text.group(1).decode() if text else ''}"
    return repr(body[:200])


def job_id_of(body: bytes) -> str | None:
    """The job id of an accepted asynchronous Execute (1.0.0 statusLocation or 2.0 JobID)."""
    match = _JOB_ID_20.search(body)
    if match:
        return match.group(1).decode()
    location = re.search(rb'statusLocation="([^"]+)"', body)
    return location.group(1).decode().rsplit("/", 1)[-1] if location else None


class Client:
    """One simulated user; ``run`` loops until ``stop_at``."""

    def __init__(
        self, url: str, number: int, book: Book, weights: dict[str, int], seed: int, timeout: float, in_flight: int
    ) -> None:
        self.url = url
        self.number = number
        self.book = book
        self.rng = random.Random(seed * 1000 + number)
        self.kinds = list(weights)
        self.weights = [weights[k] for k in self.kinds]
        self.timeout = timeout
        self.sequence = 0
        self.max_in_flight = in_flight
        self.in_flight: list[Job] = []  # this client's jobs not yet seen ended

    def kvp(self, query: str) -> str:
        return f"{self.url}?service=WPS&{query}"

    def run(self, stop_at: float) -> None:
        while time.monotonic() < stop_at:
            kind = self.rng.choices(self.kinds, self.weights)[0]
            self.sequence += 1
            getattr(self, kind)()

    def send(self, method: str, url: str, body: bytes | None = None) -> Answer:
        sent, started = time.time(), time.perf_counter()
        try:
            status, data = http_request(method, url, body, XML if body else None, timeout=self.timeout)
        except OSError as exc:
            return Answer(None, b"", sent, time.perf_counter() - started, f"{type(exc).__name__}: {exc}")
        return Answer(status, data, sent, time.perf_counter() - started)

    def check(self, kind: str, answer: Answer, ok: bool) -> None:
        """Record the request once: its latency, and a problem if the answer is not what it must be."""
        problem = answer.error
        if answer.status is not None and (answer.status >= 500 or not ok):
            problem = describe_answer(answer.body)
        self.book.record(kind, answer, problem)

    def capabilities(self) -> None:
        version = self.rng.choice(["1.0.0", "2.0.0"])
        answer = self.send("GET", self.kvp(f"request=GetCapabilities&AcceptVersions={version}"))
        self.check("capabilities", answer, answer.status == 200 and b"Capabilities" in answer.body)

    def describe(self) -> None:
        version = self.rng.choice(["1.0.0", "2.0.0"])
        identifier = self.rng.choice(["ALL", "say_hello", "sleep", "wordcounter", "echo"])
        answer = self.send("GET", self.kvp(f"version={version}&request=DescribeProcess&identifier={identifier}"))
        self.check("describe", answer, answer.status == 200 and b"Process" in answer.body)

    def execute_sync(self) -> None:
        name = f"client{self.number}-{self.sequence}"
        if self.rng.random() < 0.5:
            answer = self.send(
                "GET", self.kvp(f"version=1.0.0&request=Execute&identifier=say_hello&DataInputs=name={name}")
            )
        else:
            body = execute20("say_hello", {"name": name}, "response", "sync", self.rng.choice(["raw", "document"]))
            answer = self.send("POST", self.url, body)
        self.check("execute_sync", answer, answer.status == 200 and f"Hello {name}".encode() in answer.body)

    def execute_async(self) -> None:
        if len(self.in_flight) >= self.max_in_flight:  # a real client waits for its jobs: it polls instead
            self.status()
            return
        choice = self.rng.random()
        expected = None
        if choice < 0.4:  # wordcounter, its output by reference: what downloads fetch later
            text = " ".join(self.rng.choice(["alpha", "beta", "gamma", "delta"]) for _ in range(12))
            expected = word_counts(text)
            answer = self.send(
                "GET",
                self.kvp(
                    "version=1.0.0&request=Execute&identifier=wordcounter&storeExecuteResponse=true&status=true"
                    f"&DataInputs=text={urllib.parse.quote(text)}@mimeType=text/plain"
                    "&ResponseDocument=output@asReference=true"
                ),
            )
        elif choice < 0.7:
            delay = self.rng.choice(["0", "0.1", "0.3"])
            answer = self.send(
                "GET",
                self.kvp(
                    "version=1.0.0&request=Execute&identifier=sleep&storeExecuteResponse=true&status=true"
                    f"&DataInputs=delay={delay}"
                ),
            )
        else:
            body = execute20("sleep", {"delay": self.rng.choice(["0", "0.2"])}, "sleep_output", "async", "document")
            answer = self.send("POST", self.url, body)
        job_id = job_id_of(answer.body) if answer.status == 200 else None
        self.check("execute_async", answer, job_id is not None)
        if job_id:
            job = Job(job_id, expected)
            self.book.add_job(job)
            self.in_flight.append(job)

    def status(self) -> None:
        job = self.rng.choice(self.in_flight) if self.in_flight else self.book.pick_job(self.rng)
        if job is None:
            self.capabilities()
            return
        if self.rng.random() < 0.5:
            answer = self.send("GET", self.kvp(f"version=2.0.0&request=GetStatus&jobId={job.job_id}"))
            match = _STATUS_20.search(answer.body)
            ok = answer.status == 200 and match is not None
            state = STATES_20.get(match.group(1).decode()) if match else None
        else:
            answer = self.send("GET", f"{self.url}/jobs/{job.job_id}")
            state = job_state(answer.body)
            ok = answer.status == 200 and state is not None
            state = None if state == "running" else state
            reference = _REFERENCE.search(answer.body)
            if state == "succeeded" and reference and job.expected is not None:
                job.output_url = reference.group(1).decode().replace("&amp;", "&")
        self.check("status", answer, ok)
        if ok and state:
            job.state = state
            if job in self.in_flight:
                self.in_flight.remove(job)

    def download(self) -> None:
        job = self.book.pick_output(self.rng)
        if job is None or job.output_url is None:
            self.status()
            return
        answer = self.send("GET", job.output_url)
        try:
            ok = answer.status == 200 and json.loads(answer.body) == job.expected
        except ValueError:
            ok = False
        self.check("download", answer, ok)


def drain(url: str, book: Book, seconds: float, timeout: float) -> float:
    """Follow every accepted job that has not been seen ended until it ends; returns the time it took."""
    started = time.monotonic()
    deadline = started + seconds
    while time.monotonic() < deadline:
        pending = book.unended()
        if not pending:
            break
        for job in pending:
            try:
                status, answer = http_request("GET", f"{url}/jobs/{job.job_id}", timeout=timeout)
            except OSError:
                continue
            state = job_state(answer) if status == 200 else None
            if state in ("succeeded", "failed"):
                job.state = state
            elif status == 404:  # dismissed (or expired): it ended
                job.state = "dismissed"
            if time.monotonic() >= deadline:
                break
        time.sleep(0.5)
    return time.monotonic() - started


def count_in_logs(paths: list[Path], needle: str) -> int:
    total = 0
    for path in paths:
        try:
            with path.open(encoding="utf-8", errors="replace") as log:
                total += sum(line.count(needle) for line in log)
        except OSError:
            continue
    return total


def run(
    url: str,
    clients: int = 50,
    duration: float = 60.0,
    drain_seconds: float = 120.0,
    logs: list[Path] | None = None,
    weights: dict[str, int] | None = None,
    seed: int = 1,
    timeout: float = 120.0,
    in_flight: int = 2,
) -> dict:
    """The whole run: load for ``duration`` seconds, drain, read the logs; returns the figures."""
    _check_loopback(url)
    book = Book()
    stop_at = time.monotonic() + duration
    threads = [
        threading.Thread(
            target=Client(url, n, book, weights or DEFAULT_WEIGHTS, seed, timeout, in_flight).run,
            args=(stop_at,),
            daemon=True,
        )
        for n in range(clients)
    ]
    began = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=duration + timeout + 30)
    elapsed = time.monotonic() - began
    drained = drain(url, book, drain_seconds, timeout)
    kinds = {}
    for kind, tally in book.tallies.items():
        ms = [s * 1000 for s in tally.latencies]
        kinds[kind] = {
            "requests": len(ms),
            "per_s": round(len(ms) / elapsed, 1),
            "p50_ms": round(percentile(ms, 50), 1) if ms else None,
            "p99_ms": round(percentile(ms, 99), 1) if ms else None,
            "max_ms": round(max(ms), 1) if ms else None,
            "http_5xx": tally.http_5xx,
            "unexpected": tally.unexpected,
            "errors": tally.errors,
            "samples": tally.samples,
        }
    states = collections.Counter(job.state or "not ended" for job in book.jobs.values())
    all_ms = [s * 1000 for t in book.tallies.values() for s in t.latencies]
    return {
        "url": url,
        "clients": clients,
        "duration_s": round(elapsed, 1),
        "requests": len(all_ms),
        "per_s": round(len(all_ms) / elapsed, 1),
        "p50_ms": round(percentile(all_ms, 50), 1) if all_ms else None,
        "p99_ms": round(percentile(all_ms, 99), 1) if all_ms else None,
        "http_5xx": sum(k["http_5xx"] for k in kinds.values()),
        "unexpected": sum(k["unexpected"] for k in kinds.values()),
        "errors": sum(k["errors"] for k in kinds.values()),
        "kinds": kinds,
        "failures": book.failures,
        "jobs": {
            "accepted": len(book.jobs),
            "ended": len(book.jobs) - states["not ended"],
            "succeeded": states["succeeded"],
            "failed": states["failed"],
            "dismissed": states["dismissed"],
            "not_ended": sorted(job.job_id for job in book.unended()),
            "drain_s": round(drained, 1),
            "outputs_downloaded": kinds["download"]["requests"],
        },
        "log": {
            "database_is_locked": count_in_logs(logs or [], LOCKED),
            "tracebacks": count_in_logs(logs or [], "Traceback"),
        },
    }


def table(report: dict) -> str:
    lines = [
        f"{report['clients']} clients for {report['duration_s']} s against {report['url']}",
        f"{'kind':<14} {'requests':>8} {'req/s':>7} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} {'5xx':>4} "
        f"{'unexp':>5} {'errors':>6}",
    ]
    rows = [*report["kinds"].items(), ("all", {**report, "max_ms": None})]
    for kind, k in rows:
        lines.append(
            f"{kind:<14} {k['requests']:>8} {k['per_s']:>7} {k['p50_ms'] or '-':>8} {k['p99_ms'] or '-':>8} "
            f"{k.get('max_ms') or '-':>8} {k['http_5xx']:>4} {k['unexpected']:>5} {k['errors']:>6}"
        )
    jobs = report["jobs"]
    lines.append(
        f"jobs: {jobs['accepted']} accepted, {jobs['ended']} ended ({jobs['succeeded']} succeeded, "
        f"{jobs['failed']} failed, {jobs['dismissed']} dismissed), {len(jobs['not_ended'])} not ended; "
        f"drained in {jobs['drain_s']} s"
    )
    lines.append(
        f"server log: {report['log']['database_is_locked']} 'database is locked', "
        f"{report['log']['tracebacks']} tracebacks"
    )
    for kind, k in report["kinds"].items():
        for sample in k["samples"]:
            lines.append(f"  {kind}: {sample}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", required=True, help="the WPS endpoint, e.g. http://127.0.0.1:5000/wps")
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of load")
    parser.add_argument("--drain", type=float, default=120.0, help="seconds to wait for accepted jobs to end")
    parser.add_argument("--server-log", action="append", default=[], type=Path, help="log to search (repeatable)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds one request may take")
    parser.add_argument("--in-flight", type=int, default=2, help="unfinished jobs a client may have at once")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    report = run(
        args.url,
        args.clients,
        args.duration,
        args.drain,
        args.server_log,
        seed=args.seed,
        timeout=args.timeout,
        in_flight=args.in_flight,
    )
    print(table(report), flush=True)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2), encoding="utf-8")
    failed = (
        report["http_5xx"] or report["errors"] or report["jobs"]["not_ended"] or report["log"]["database_is_locked"]
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
