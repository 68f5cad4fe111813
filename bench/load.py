"""Load generation and measurement. Standard library only (plus `wrk`).

Every loop here is bounded in count and in time, and talks to 127.0.0.1 only.
"""

import html
import http.client
import queue
import re
import shutil
import subprocess
import threading
import time
import urllib.parse

# ------------------------------------------------------------- HTTP ----


def _check_loopback(url):
    host = urllib.parse.urlsplit(url).hostname
    if host not in ("127.0.0.1", "localhost", "::1"):
        raise ValueError(f"refusing a non-loopback URL: {url}")


def http_request(method, url, body=None, headers=None, timeout=30.0):
    """One request on a fresh connection (gunicorn's sync workers close it anyway).
    Returns (status, body bytes)."""
    status, _, content = http_exchange(method, url, body, headers, timeout)
    return status, content


def http_exchange(method, url, body=None, headers=None, timeout=30.0):
    """As http_request, and the response's headers: (status, headers, body bytes)."""
    _check_loopback(url)
    parts = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port or 80, timeout=timeout)
    try:
        path = parts.path or "/"
        if parts.query:
            path += "?" + parts.query
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, resp.headers, resp.read()
    finally:
        conn.close()


def http_get(url, timeout=30.0):
    return http_request("GET", url, timeout=timeout)


def percentile(values, pct):
    """Nearest-rank percentile of a non-empty list."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, int(-(-pct * len(ordered) // 100)))  # ceil
    return ordered[min(rank, len(ordered)) - 1]


# -------------------------------------------------------------- wrk ----

_RPS = re.compile(r"Requests/sec:\s+([0-9.]+)")
_TOTAL = re.compile(r"(\d+) requests in ([0-9.]+)(\w+)")
_NON2XX = re.compile(r"Non-2xx or 3xx responses:\s+(\d+)")
_SOCKERR = re.compile(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)")


def wrk(url, duration, threads=2, connections=4, timeout_s=10, headers=(), script=None):
    """Runs `wrk -tT -cC -dDs URL` (with `-H` for each of `headers`, `-s script` for a Lua script, e.g.
    one that POSTs); returns its figures as a dict."""
    _check_loopback(url)
    exe = shutil.which("wrk")
    if not exe:
        raise RuntimeError(
            "wrk is not installed: apt-get -o DPkg::Lock::Timeout=600 install -y --no-install-recommends wrk"
        )
    cmd = [exe, f"-t{threads}", f"-c{connections}", f"-d{duration}s", "--timeout", f"{timeout_s}s", url]
    for header in headers:
        cmd[1:1] = ["-H", header]
    if script:
        cmd[1:1] = ["-s", script]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 60)
    text = out.stdout + out.stderr
    m = _RPS.search(text)
    if out.returncode != 0 or not m:
        raise RuntimeError(f"wrk failed ({out.returncode}):\n{text}")
    res = {"requests_per_s": float(m.group(1)), "non_2xx": 0, "socket_errors": 0, "command": " ".join(cmd[1:])}
    t = _TOTAL.search(text)
    if t:
        res["requests"] = int(t.group(1))
    n = _NON2XX.search(text)
    if n:
        res["non_2xx"] = int(n.group(1))
    s = _SOCKERR.search(text)
    if s:
        res["socket_errors"] = sum(int(x) for x in s.groups())
    return res


# ------------------------------------------------- WPS 1.0.0 parsing ----

_STATUS_LOC = re.compile(rb'statusLocation\s*=\s*"([^"]*)"')
_SUCCEEDED = re.compile(rb"<(?:\w+:)?ProcessSucceeded\b")
_FAILED = re.compile(rb"<(?:\w+:)?ProcessFailed\b")
_ACCEPTED_OR_RUNNING = re.compile(rb"<(?:\w+:)?Process(?:Accepted|Started|Paused)\b")
_UUID = re.compile(r"[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}")


def status_location(body):
    m = _STATUS_LOC.search(body)
    if not m or not m.group(1):
        return None
    return html.unescape(m.group(1).decode("utf-8"))


def job_state(body):
    """'succeeded', 'failed', 'running' (accepted/started/paused) or None."""
    if _SUCCEEDED.search(body):
        return "succeeded"
    if _FAILED.search(body):
        return "failed"
    if _ACCEPTED_OR_RUNNING.search(body):
        return "running"
    return None


def job_id_from_location(location):
    """Our job id, from a statusLocation: a jobId-like query parameter, else
    a UUID anywhere in it, else its last path segment without extension."""
    parts = urllib.parse.urlsplit(location)
    for key, values in urllib.parse.parse_qs(parts.query).items():
        if key.lower() in ("jobid", "job_id", "job", "id", "uuid"):
            return values[0]
    m = _UUID.search(location)
    if m:
        return m.group(0)
    return parts.path.rstrip("/").rsplit("/", 1)[-1].split(".", 1)[0]


# ------------------------------------------------------- async jobs ----


def wps_submit(url):
    """A WPS 1.0.0 asynchronous Execute as a KVP GET of ``url``: what submit_jobs sends by default."""

    def send(timeout):
        status, body = http_get(url, timeout=timeout)
        return status, body, status_location(body) if status == 200 else None

    return send


def submit_jobs(url, count, threads, timeout=30.0, deadline_s=300.0, send=None):
    """Submits `count` asynchronous executions from `threads` threads: `send(timeout)` answers (HTTP
    status, body, the job's location or None); by default a WPS 1.0.0 KVP GET of `url`. Returns a dict
    with per-submission results."""
    send = send or wps_submit(url)
    todo = queue.Queue()
    for i in range(count):
        todo.put(i)
    results = [None] * count
    stop_at = time.monotonic() + deadline_s

    def worker():
        while time.monotonic() < stop_at:
            try:
                i = todo.get_nowait()
            except queue.Empty:
                return
            t0 = time.perf_counter()
            try:
                status, body, location = send(timeout)
                err = None
            except (OSError, http.client.HTTPException) as e:
                status, body, location, err = None, b"", None, str(e)
            t1 = time.perf_counter()
            results[i] = {
                "t0": t0,
                "t1": t1,
                "http": status,
                "error": err,
                "location": location,
                "body_head": None if location else body[:300].decode("utf-8", "replace"),
            }

    ts = [threading.Thread(target=worker, daemon=True) for _ in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(max(0.0, stop_at - time.monotonic()) + timeout + 1)
    done = [r for r in results if r is not None]
    lat = [r["t1"] - r["t0"] for r in done]
    return {
        "results": results,
        "submitted": len(done),
        "accepted": sum(1 for r in done if r["location"]),
        "errors": [r["error"] or "HTTP {}: {}".format(r["http"], r["body_head"]) for r in done if not r["location"]][
            :5
        ],
        "latency_p50_ms": _ms(percentile(lat, 50)),
        "latency_p99_ms": _ms(percentile(lat, 99)),
        "latency_max_ms": _ms(max(lat) if lat else None),
        "first_t0": min((r["t0"] for r in done), default=None),
        "last_t1": max((r["t1"] for r in done), default=None),
    }


def poll_jobs(locations, threads=4, round_pause=0.1, timeout_s=300.0, state_of=job_state):
    """Polls every status location until its job succeeded or failed (or
    `timeout_s` passed); `state_of(body)` reads a status document (WPS 1.0.0's
    by default). Returns {location: (state, perf_counter when seen)},
    the number of polls made and {location: last answer} of the unfinished."""
    pending = list(dict.fromkeys(locations))
    final = {}
    last = {}
    polls = 0
    lock = threading.Lock()
    stop_at = time.monotonic() + timeout_s
    while pending and time.monotonic() < stop_at:
        work = queue.Queue()
        for loc in pending:
            work.put(loc)

        def worker(work=work):
            nonlocal polls
            while time.monotonic() < stop_at:
                try:
                    loc = work.get_nowait()
                except queue.Empty:
                    return
                try:
                    status, body = http_get(loc, timeout=30)
                except (OSError, http.client.HTTPException) as e:
                    last[loc] = f"{type(e).__name__}: {e}"
                    continue
                seen = time.perf_counter()
                state = state_of(body) if status == 200 else None
                with lock:
                    polls += 1
                    if state in ("succeeded", "failed"):
                        final[loc] = (state, seen)
                    else:
                        last[loc] = f"HTTP {status}: " + body[:600].decode("utf-8", "replace")

        ts = [threading.Thread(target=worker, daemon=True) for _ in range(threads)]
        for t in ts:
            t.start()
        for t in ts:
            t.join(max(0.0, stop_at - time.monotonic()) + 31)
        pending = [loc for loc in pending if loc not in final]
        if pending:
            time.sleep(round_pause)
    return final, polls, {loc: last.get(loc) for loc in pending}


def async_jobs(url, count, submit_threads=16, poll_threads=4, timeout_s=300.0, send=None, state_of=job_state):
    """The 500-async-jobs scenario: submit all, then poll all to the end (`send` and `state_of` as
    submit_jobs and poll_jobs take them)."""
    sub = submit_jobs(url, count, submit_threads, deadline_s=timeout_s, send=send)
    locations = [r["location"] for r in sub["results"] if r and r["location"]]
    remaining = max(10.0, timeout_s - (time.perf_counter() - sub["first_t0"])) if sub["first_t0"] else 0
    final, polls, unfinished = poll_jobs(locations, threads=poll_threads, timeout_s=remaining, state_of=state_of)
    succeeded = sum(1 for s, _ in final.values() if s == "succeeded")
    failed = sum(1 for s, _ in final.values() if s == "failed")
    last_done = max((t for _, t in final.values()), default=None)
    span = (last_done - sub["first_t0"]) if last_done and sub["first_t0"] else None
    finished = succeeded + failed
    out = {k: v for k, v in sub.items() if k not in ("results", "first_t0", "last_t1")}
    out.update(
        {
            "jobs": count,
            "succeeded": succeeded,
            "failed": failed,
            "unfinished": len(locations) - finished,
            "polls": polls,
            "submit_span_s": (sub["last_t1"] - sub["first_t0"]) if sub["first_t0"] else None,
            "first_submit_to_last_completion_s": span,
            "completed_jobs_per_s": (finished / span) if span else None,
            "locations": locations,
            # what the unfinished jobs' status documents said last (a few)
            "unfinished_examples": [{"location": k, "last": v} for k, v in list(unfinished.items())[:5]],
        }
    )
    return out


# ------------------------------------------------------ GetStatus p99 ----


def latency_run(urls, total, threads=4, timeout_s=120.0, expect=None):
    """GETs `total` requests round-robin over `urls` from `threads` threads;
    returns p50/p99/max in ms and the number of bad answers."""
    todo = queue.Queue()
    for i in range(total):
        todo.put(urls[i % len(urls)])
    lat, bad = [], []
    lock = threading.Lock()
    stop_at = time.monotonic() + timeout_s

    def worker():
        while time.monotonic() < stop_at:
            try:
                u = todo.get_nowait()
            except queue.Empty:
                return
            t0 = time.perf_counter()
            try:
                status, body = http_get(u, timeout=30)
            except (OSError, http.client.HTTPException) as e:
                status, body = None, str(e).encode()
            dt = time.perf_counter() - t0
            ok = status == 200 and (expect is None or expect in body)
            with lock:
                lat.append(dt)
                if not ok:
                    bad.append("HTTP {}: {}".format(status, body[:200].decode("utf-8", "replace")))

    ts = [threading.Thread(target=worker, daemon=True) for _ in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(timeout_s + 31)
    return {
        "requests": len(lat),
        "bad": len(bad),
        "bad_examples": bad[:3],
        "p50_ms": _ms(percentile(lat, 50)),
        "p99_ms": _ms(percentile(lat, 99)),
        "max_ms": _ms(max(lat) if lat else None),
        "latencies": lat,
    }


def summarize_latencies(lat):
    return {
        "requests": len(lat),
        "p50_ms": _ms(percentile(lat, 50)),
        "p99_ms": _ms(percentile(lat, 99)),
        "max_ms": _ms(max(lat) if lat else None),
    }


# ----------------------------------------------------------- memory ----


def stream_and_sample(url, rss_fn, interval=0.02, timeout=600.0, chunk=1 << 20):
    """GETs `url`, reading and discarding the body in `chunk`s, while a
    thread samples `rss_fn()` (bytes) every `interval` s. Returns the
    baseline, peak and growth of RSS and what was received."""
    _check_loopback(url)
    samples = [rss_fn() for _ in range(5)]
    baseline = sorted(samples)[len(samples) // 2]
    peak = [baseline]
    stop = threading.Event()

    def sampler():
        while not stop.is_set():
            v = rss_fn()
            if v > peak[0]:
                peak[0] = v
            stop.wait(interval)

    th = threading.Thread(target=sampler, daemon=True)
    th.start()
    received, status, err = 0, None, None
    ctype = None
    t0 = time.perf_counter()
    try:
        parts = urllib.parse.urlsplit(url)
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
        try:
            conn.request("GET", parts.path + "?" + parts.query)
            resp = conn.getresponse()
            status = resp.status
            ctype = resp.getheader("Content-Type")
            while True:
                data = resp.read(chunk)
                if not data:
                    break
                received += len(data)
        finally:
            conn.close()
    except (OSError, http.client.HTTPException) as e:
        err = str(e)
    elapsed = time.perf_counter() - t0
    time.sleep(0.3)  # catch a late peak (e.g. cleanup after the response)
    stop.set()
    th.join(5)
    after = rss_fn()
    mib = 1024 * 1024
    return {
        "http": status,
        "error": err,
        "content_type": ctype,
        "received_bytes": received,
        "seconds": elapsed,
        "rss_baseline_mib": baseline / mib,
        "rss_peak_mib": peak[0] / mib,
        "rss_after_mib": after / mib,
        "growth_mib": (peak[0] - baseline) / mib,
    }


def _ms(seconds):
    return None if seconds is None else seconds * 1000.0
