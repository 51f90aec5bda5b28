#!/usr/bin/env python3
"""Side-by-side bench: doryd vs the reference Python SDK vs nginx, in one run.

Called by bench/run.sh, which prepares the tools; it can also be run directly:

    python3 bench/bench.py [--sections probe] [--json results.json]

Prints Markdown (the tables of bench/README.md) on standard output and progress on
standard error. Everything runs on 127.0.0.1, each server in its own temporary
directory on a free port; every process started is killed by pid at the end.

Sections are functions registered in SECTIONS; each returns a Markdown block and a
dict for --json: "probe" (startup, RSS, health throughput, SIGTERM against the Python
SDK and nginx) and "snapshot" (doryd's durable save of a 10 MiB state against `gzip -1`
and `gzip -6` of the same bytes, and restore time). Planned: "events" (events/s of
`doryd events` against the reference processor library).
"""

from __future__ import annotations

import argparse
import atexit
import calendar
import gzip
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

REPO = Path(__file__).resolve().parent.parent
BENCH = REPO / "bench"

# --------------------------------------------------------------------------- processes


class Processes:
    """Every process and directory the bench creates, so the trap can clean up by pid."""

    def __init__(self) -> None:
        self.popens: list[subprocess.Popen] = []
        self.dirs: list[Path] = []
        self.keep = False

    def track(self, p: subprocess.Popen) -> subprocess.Popen:
        self.popens.append(p)
        return p

    def tempdir(self, prefix: str) -> Path:
        d = Path(tempfile.mkdtemp(prefix=f"dory-bench-{prefix}-"))
        self.dirs.append(d)
        return d

    def cleanup(self) -> None:
        for p in self.popens:
            if p.returncode is None:
                for pid in [p.pid] + child_pids(p.pid):
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                try:
                    os.waitpid(p.pid, 0)
                except ChildProcessError:
                    pass
                p.returncode = -9
        self.popens.clear()
        if not self.keep:
            for d in self.dirs:
                shutil.rmtree(d, ignore_errors=True)
            self.dirs.clear()


PROCS = Processes()


def _on_signal(signum, _frame):
    PROCS.cleanup()
    sys.exit(128 + signum)


def log(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


def child_pids(pid: int) -> list[int]:
    """Direct children of pid, found by scanning /proc (works without CONFIG_PROC_CHILDREN)."""
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        # the command name is in parentheses and may contain spaces: split after the last ')'
        fields = stat[stat.rfind(")") + 2 :].split()
        if len(fields) > 1 and int(fields[1]) == pid:
            out.append(int(entry))
    return out


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_status(port: int, path: str, timeout: float = 1.0) -> Optional[int]:
    """Status code of one GET on loopback, or None when nothing answers."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode())
            head = b""
            while b"\r\n" not in head and len(head) < 256:
                chunk = s.recv(256)
                if not chunk:
                    break
                head += chunk
    except OSError:
        return None
    m = re.match(rb"HTTP/1\.[01] (\d{3})", head)
    return int(m.group(1)) if m else None


def wait_exit(p: subprocess.Popen, limit: float) -> int:
    """waitpid without polling (so the measured time is exact); SIGKILL after `limit` seconds."""
    timer = threading.Timer(limit, lambda: _kill_quietly(p.pid))
    timer.start()
    try:
        _, status = os.waitpid(p.pid, 0)
    finally:
        timer.cancel()
    p.returncode = os.waitstatus_to_exitcode(status)
    return p.returncode


def _kill_quietly(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


# --------------------------------------------------------------------------- servers


@dataclass
class Server:
    """One column of the tables: how to start a server and which paths it answers."""

    key: str
    title: str
    ready_path: str
    health_path: str
    missing: Optional[str]  # why it cannot run here, or None
    start: Callable[[Path, int, int], subprocess.Popen]  # (workdir, port, state_bytes)
    saved: Callable[[Path, float], Optional[bool]]  # (workdir, kill wall time) → final state on disk?
    rss_includes_children: bool = False
    version: str = ""


def clean_env(**extra: str) -> dict[str, str]:
    """The caller's environment without DORY_* and systemd variables, plus `extra`."""
    drop = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "JOURNAL_STREAM", "RESTART_COUNT")
    env = {k: v for k, v in os.environ.items() if not k.startswith("DORY_") and k not in drop}
    env.update(extra)
    return env


def spawn(argv: list[str], workdir: Path, env: dict[str, str]) -> subprocess.Popen:
    logf = open(workdir / "server.log", "ab")
    try:
        return PROCS.track(
            subprocess.Popen(argv, cwd=workdir, env=env, stdin=subprocess.DEVNULL, stdout=logf, stderr=logf)
        )
    finally:
        logf.close()


def doryd_server(binary: Path, **extra_env: str) -> Server:
    """`doryd demo`; `extra_env` adds settings (e.g. DORY_SNAPSHOT_LEVEL) to the clean environment."""
    missing = None
    version = ""
    if not binary.is_file() or not os.access(binary, os.X_OK):
        missing = f"not built ({binary.relative_to(REPO) if binary.is_relative_to(REPO) else binary} missing)"
    else:
        try:
            r = subprocess.run([str(binary), "--version"], capture_output=True, text=True, timeout=5)
            version = r.stdout.strip().splitlines()[0] if r.returncode == 0 and r.stdout.strip() else "?"
        except (OSError, subprocess.TimeoutExpired):
            version = "?"

    def start(workdir: Path, port: int, state_bytes: int) -> subprocess.Popen:
        argv = [str(binary), "demo"]
        if state_bytes:
            argv += ["--state-bytes", str(state_bytes)]
        env = clean_env(
            DORY_HEALTH_HOST="127.0.0.1",
            DORY_HEALTH_PORT=str(port),
            DORY_STATE_DIR=str(workdir / "state"),
            DORY_PROCESSOR_ID="bench",
            DORY_LOG_LEVEL="info",
            **extra_env,
        )
        return spawn(argv, workdir, env)

    def saved(workdir: Path, killed_at: float) -> Optional[bool]:
        files = sorted((workdir / "state").glob("*/snapshots/*.json.gz"))
        if not files:
            return False
        try:
            envelope = json.loads(gzip.decompress(files[-1].read_bytes()))
        except (OSError, ValueError):
            return False
        # The counter changes every 100 ms, so the final save writes a new generation
        # (the reuse rule of spec §6.6 applies only to an unchanged state).
        return envelope.get("reason") == "shutdown"

    return Server("doryd", "doryd demo", "/ready", "/healthz", missing, start, saved, version=version)


def python_sdk_server(python: Path) -> Server:
    missing = None
    version = ""
    if not python.is_file():
        missing = f"no venv ({python} missing; run bench/run.sh)"
    else:
        r = subprocess.run([str(python), "-c", "import dory; print(dory.__version__)"], capture_output=True, text=True)
        if r.returncode != 0:
            missing = "dory-sdk not installed"
        else:
            version = "dory-sdk " + r.stdout.strip()

    def start(workdir: Path, port: int, state_bytes: int) -> subprocess.Popen:
        (workdir / "state").mkdir(exist_ok=True)
        env = clean_env(
            DORY_HEALTH_PORT=str(port),
            DORY_STATE_BACKEND="local",
            DORY_LOG_LEVEL="INFO",
            DORY_PROCESSOR_ID="bench",
            RESTART_COUNT="0",
            BENCH_STATE_DIR=str(workdir / "state"),
            BENCH_STATE_BYTES=str(state_bytes),
        )
        return spawn([str(python), str(BENCH / "python_counter.py")], workdir, env)

    def saved(workdir: Path, killed_at: float) -> Optional[bool]:
        f = workdir / "state" / "dory-state-bench.json"
        if not f.is_file():
            return False
        try:
            envelope = json.loads(f.read_text())
            return float(envelope["metadata"]["timestamp"]) >= killed_at - 0.001
        except (OSError, ValueError, KeyError, TypeError):
            return False

    return Server("python", "python SDK", "/ready", "/health", missing, start, saved, version=version)


NGINX_CONF = """\
daemon off;
master_process on;
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    keepalive_requests 1000000;
    client_body_temp_path {d}/client_body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    server {{
        listen 127.0.0.1:{port};
        location / {{ default_type text/plain; return 200 "ok\\n"; }}
    }}
}}
"""


def nginx_server(nginx: Optional[str]) -> Server:
    missing = None if nginx else "nginx not installed"
    version = ""
    if nginx:
        version = subprocess.run([nginx, "-v"], capture_output=True, text=True).stderr.strip().replace("nginx version: ", "")

    def start(workdir: Path, port: int, state_bytes: int) -> subprocess.Popen:
        conf = workdir / "nginx.conf"
        conf.write_text(NGINX_CONF.format(d=workdir, port=port))
        return spawn([nginx, "-p", str(workdir), "-e", str(workdir / "error.log"), "-c", str(conf)], workdir, clean_env())

    return Server("nginx", "nginx (1 worker)", "/healthz", "/healthz", missing, start, lambda w, t: None,
                  rss_includes_children=True, version=version)


# --------------------------------------------------------------------------- measurements


class BenchError(RuntimeError):
    pass


@dataclass
class Instance:
    server: Server
    popen: subprocess.Popen
    workdir: Path
    port: int
    ready_sec: float
    spawned_at: float = 0.0  # wall clock (time.time()) just before the spawn


def log_hint(workdir: Path) -> str:
    return f"log: {workdir / 'server.log'}" + ("" if PROCS.keep else " (deleted at exit; --keep keeps it)")


def start_ready(server: Server, state_bytes: int = 0, limit: float = 20.0, workdir: Optional[Path] = None) -> Instance:
    """Spawn in a fresh directory (or `workdir`, prepared by the caller) on a fresh port; time spawn → first 200
    on the ready path."""
    workdir = workdir or PROCS.tempdir(server.key)
    port = free_port()
    wall = time.time()
    t0 = time.perf_counter()
    p = server.start(workdir, port, state_bytes)
    while True:
        status = http_status(port, server.ready_path)
        now = time.perf_counter()
        if status == 200:
            return Instance(server, p, workdir, port, now - t0, wall)
        if p.poll() is not None:
            raise BenchError(f"{server.key} exited with {p.returncode} before ready; {log_hint(workdir)}")
        if now - t0 > limit:
            raise BenchError(f"{server.key} not ready within {limit:.0f} s; {log_hint(workdir)}")
        time.sleep(0.0005)


def stop(inst: Instance, limit: float = 30.0) -> tuple[float, int, float]:
    """SIGTERM → waitpid; returns (seconds, exit code, wall time of the kill)."""
    killed_at = time.time()
    t0 = time.perf_counter()
    os.kill(inst.popen.pid, signal.SIGTERM)
    code = wait_exit(inst.popen, limit)
    return time.perf_counter() - t0, code, killed_at


def run_wrk(wrk: str, url: str, threads: int, conns: int, seconds: float) -> dict:
    r = subprocess.run(
        [wrk, f"-t{threads}", f"-c{conns}", f"-d{seconds:g}s", "--latency", url],
        capture_output=True, text=True, timeout=seconds + 30,
    )
    if r.returncode != 0:
        raise BenchError(f"wrk failed: {r.stderr.strip() or r.stdout.strip()}")
    out = r.stdout
    rps = float(re.search(r"Requests/sec:\s*([\d.]+)", out).group(1))
    m = re.search(r"^\s*99%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
    p99_ms = float(m.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[m.group(2)] if m else float("nan")
    non2xx = re.search(r"Non-2xx or 3xx responses:\s*(\d+)", out)
    errors = re.search(r"Socket errors:(.*)", out)
    return {
        "rps": rps,
        "p99_ms": p99_ms,
        "non_2xx": int(non2xx.group(1)) if non2xx else 0,
        "socket_errors": errors.group(1).strip() if errors else "",
    }


# --------------------------------------------------------------------------- probe section


TARGETS = {
    "ready_ms": "≤ 20 ms",
    "rss_mib": "≤ 12 MiB",
    "rps": "≥ 0.6× nginx, ≥ 8× python",
    "p99_ms": "≤ 2 ms",
    "sigterm_ms": "≤ 100 ms",
}


def measure_server(server: Server, opts) -> dict:
    """All probe-section numbers of one server; an error is recorded, not raised."""
    res: dict = {"version": server.version}
    try:
        # startup-to-ready, fresh state dir each time (a first start)
        times = []
        for _ in range(opts.startup_runs):
            inst = start_ready(server)
            times.append(inst.ready_sec)
            stop(inst)
        res["ready_ms"] = statistics.median(times) * 1000
        res["ready_ms_all"] = [round(t * 1000, 2) for t in times]
        log(f"{server.key}: ready median {res['ready_ms']:.2f} ms")

        # idle RSS, then wrk on the health path
        inst = start_ready(server)
        time.sleep(opts.idle_sec)
        pids = [inst.popen.pid] + (child_pids(inst.popen.pid) if server.rss_includes_children else [])
        res["rss_mib"] = sum(rss_kib(pid) for pid in pids) / 1024
        url = f"http://127.0.0.1:{inst.port}{server.health_path}"
        run_wrk(opts.wrk, url, 1, opts.connections, 1)  # warm-up
        w = run_wrk(opts.wrk, url, 1, opts.connections, opts.duration)
        res.update(w)
        stop(inst)
        log(f"{server.key}: rss {res['rss_mib']:.1f} MiB, {w['rps']:.0f} req/s, p99 {w['p99_ms']:.2f} ms")

        # SIGTERM → exit with a state of about state_bytes
        stops, codes, saved = [], [], []
        for _ in range(opts.sigterm_runs):
            inst = start_ready(server, state_bytes=opts.state_bytes)
            time.sleep(opts.settle_sec)
            sec, code, killed_at = stop(inst)
            stops.append(sec)
            codes.append(code)
            saved.append(server.saved(inst.workdir, killed_at))
        res["sigterm_ms"] = statistics.median(stops) * 1000
        res["sigterm_ms_all"] = [round(s * 1000, 2) for s in stops]
        res["exit_codes"] = codes
        res["saved"] = saved
        log(f"{server.key}: SIGTERM→exit median {res['sigterm_ms']:.1f} ms, exit {codes}, saved {saved}")
    except BenchError as e:
        res["error"] = str(e)
        log(f"{server.key}: ERROR {e}")
    finally:
        PROCS.cleanup()
    return res


def fmt(key: str, v) -> str:
    if v is None:
        return "–"
    if key == "rps":
        return f"{v:,.0f}"
    if key == "rss_mib":
        return f"{v:.1f} MiB"
    if key in ("ready_ms", "p99_ms"):
        return f"{v:.2f} ms"
    if key == "sigterm_ms":
        return f"{v:.1f} ms"
    return str(v)


def ratio(a, b) -> str:
    if a is None or b is None or b == 0:
        return "–"
    return f"{a / b:.2f}×"


def meets(key: str, d: dict, py: dict, ng: dict) -> str:
    v = d.get(key)
    if v is None or (key == "rps" and ng.get("rps") is None and py.get("rps") is None):
        return "–"
    ok = {
        "ready_ms": lambda: v <= 20,
        "rss_mib": lambda: v <= 12,
        "p99_ms": lambda: v <= 2,
        "sigterm_ms": lambda: v <= 100 and all(d.get("saved") or [False]),
        "rps": lambda: (ng.get("rps") is None or v >= 0.6 * ng["rps"]) and (py.get("rps") is None or v >= 8 * py["rps"]),
    }[key]()
    return "yes" if ok else "**no**"


def section_probe(opts) -> tuple[str, dict]:
    servers = [doryd_server(opts.doryd), python_sdk_server(opts.python), nginx_server(opts.nginx)]
    results: dict[str, dict] = {}
    wanted = {k.strip() for k in opts.servers.split(",")}
    for s in servers:
        if s.key not in wanted:
            results[s.key] = {"missing": "not run (--servers)"}
            continue
        if s.missing:
            log(f"{s.key}: skipped, {s.missing}")
            results[s.key] = {"missing": s.missing}
            continue
        results[s.key] = measure_server(s, opts)
    d, py, ng = results["doryd"], results["python"], results["nginx"]

    def cell(r: dict, key: str) -> str:
        if "missing" in r:
            return r["missing"] if key == "ready_ms" else "–"
        if "error" in r and key not in r:
            return "error"
        return fmt(key, r.get(key))

    rows = [
        ("startup → ready (median of %d)" % opts.startup_runs, "ready_ms"),
        ("idle RSS after ready", "rss_mib"),
        (f"health req/s (wrk -t1 -c{opts.connections} -d{opts.duration:g}s)", "rps"),
        ("health p99 latency", "p99_ms"),
        (f"SIGTERM → exit, ~{opts.state_bytes // 1024} KiB state (median of {opts.sigterm_runs})", "sigterm_ms"),
    ]
    lines = [
        "## Probes, memory and shutdown",
        "",
        "| metric | doryd | python SDK | nginx | doryd ÷ python | doryd ÷ nginx | target (doryd) | met |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for label, key in rows:
        lines.append(
            f"| {label} | {cell(d, key)} | {cell(py, key)} | {cell(ng, key)} | "
            f"{ratio(d.get(key), py.get(key))} | {ratio(d.get(key), ng.get(key))} | {TARGETS[key]} | {meets(key, d, py, ng)} |"
        )

    def saved_note(r: dict) -> str:
        s = r.get("saved")
        if not s:
            return "–"
        return f"{sum(1 for x in s if x)}/{len(s)} runs, exit codes {r.get('exit_codes')}"

    versions = ", ".join(f"{s.title}: {s.version or s.missing or '?'}" for s in servers)
    lines += [
        "",
        f"- Versions: {versions}.",
        f"- Final state on disk after SIGTERM: doryd {saved_note(d)}; python SDK {saved_note(py)}.",
        "- Paths: doryd `/ready` (startup) and `/healthz` (wrk); python SDK `/ready` and `/health` "
        "(it has no `/healthz`); nginx `return 200` on `/healthz` for both.",
        "- RSS: VmRSS of the process after %.1f s idle; nginx counts master + worker." % opts.idle_sec,
        "- SIGTERM state: doryd pads the demo state with `--state-bytes %d` and must end with a durable gzip "
        "snapshot (reason `shutdown`); the python counter carries a padding string of the same size and its SDK "
        "writes indented JSON with no fsync, when it writes at all. nginx has no state." % opts.state_bytes,
    ]
    for key, r in results.items():
        for k in ("error", "socket_errors"):
            if r.get(k):
                lines.append(f"- {key}: {k.replace('_', ' ')}: {r[k]}")
        if r.get("non_2xx"):
            lines.append(f"- {key}: {r['non_2xx']} non-2xx answers during wrk")
    return "\n".join(lines), results


# --------------------------------------------------------------------------- snapshot section


SNAPSHOT_TARGET = 0.7  # doryd's durable save ≥ 0.7× the throughput of gzip -N (with fsync) at the same level


def log_records(path: Path) -> list[dict]:
    """The JSON lines of a doryd log (anything else skipped)."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return []
    out = []
    for line in text.splitlines():
        if line.startswith("{"):
            try:
                out.append(json.loads(line))
            except ValueError:
                pass
    return out


def saved_records(path: Path) -> list[dict]:
    return [r for r in log_records(path) if r.get("event") == "snapshot.saved"]


def log_wall(record: dict) -> float:
    """The wall time of a log record (`ts`, millisecond resolution, UTC)."""
    ts = record["ts"]
    whole = calendar.timegm(time.strptime(ts[:19], "%Y-%m-%dT%H:%M:%S"))
    frac = re.match(r"\.(\d+)", ts[19:])
    return whole + (float("0." + frac.group(1)) if frac else 0.0)


def pre_main_sec(inst: Instance) -> float:
    """Spawn → doryd's first log line: for `demo --state-bytes N` mostly the generation of the padding, which the
    demo draws before the runtime starts (not restore work). Millisecond resolution."""
    records = log_records(inst.workdir / "server.log")
    return max(0.0, log_wall(records[0]) - inst.spawned_at) if records else 0.0


def decision_of(inst: Instance) -> dict:
    for r in log_records(inst.workdir / "server.log"):
        if r.get("event") == "recovery.decision":
            return r
    return {}


def wait_for(what: str, inst: Instance, probe: Callable[[], Optional[dict]], limit: float = 60.0) -> dict:
    """Polls `probe` every 5 ms until it returns a record."""
    deadline = time.monotonic() + limit
    while True:
        found = probe()
        if found is not None:
            return found
        if inst.popen.poll() is not None:
            raise BenchError(f"doryd exited with {inst.popen.returncode} while waiting for {what}; {log_hint(inst.workdir)}")
        if time.monotonic() > deadline:
            raise BenchError(f"no {what} within {limit:.0f} s; {log_hint(inst.workdir)}")
        time.sleep(0.005)


def filesystem_of(path: Path) -> str:
    """`TYPE on DEVICE` of the mount holding path (longest mount-point prefix in /proc/mounts)."""
    best = ("", "?", "?")
    try:
        for line in Path("/proc/mounts").read_text().splitlines():
            dev, mnt, fstype = line.split()[:3]
            if (str(path) + "/").startswith(mnt.rstrip("/") + "/") and len(mnt) >= len(best[0]):
                best = (mnt, dev, fstype)
    except OSError:
        pass
    return f"{best[2]} on {best[1]}"


def loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


class Reference:
    """gzip(1) and in-process zlib on the envelope bytes of doryd's first snapshot; one run of each per call, so
    that they interleave with doryd's saves and see the same machine load."""

    def __init__(self, gzip_bin: Optional[str], tmp: Path) -> None:
        self.gzip_bin = gzip_bin
        self.tmp = tmp
        self.src: Optional[Path] = None
        self.envelope = b""
        self.gzip: dict[int, list[tuple[float, float, int]]] = {}  # level → [(ms, ms with fsync, size)]
        self.zlib: dict[int, list[tuple[float, int]]] = {}

    def take_input(self, state_dir: Path) -> None:
        if self.src is not None:
            return
        newest = sorted(state_dir.glob("*/snapshots/*.json.gz"))[-1]
        self.envelope = gzip.decompress(newest.read_bytes())
        self.src = self.tmp / "envelope.json"
        self.src.write_bytes(self.envelope)

    def run_once(self, level: int) -> None:
        assert self.src is not None
        if self.gzip_bin:
            out = self.tmp / f"gzip-{level}.gz"
            fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                t0 = time.perf_counter()
                r = subprocess.run([self.gzip_bin, f"-{level}", "-n", "-c", str(self.src)], stdout=fd, stderr=subprocess.PIPE)
                t1 = time.perf_counter()
                os.fsync(fd)
                t2 = time.perf_counter()
            finally:
                os.close(fd)
            if r.returncode != 0:
                raise BenchError(f"gzip -{level} failed: {r.stderr.decode(errors='replace').strip()}")
            self.gzip.setdefault(level, []).append(((t1 - t0) * 1000, (t2 - t0) * 1000, out.stat().st_size))
            out.unlink()
        t0 = time.perf_counter()
        c = zlib.compressobj(level, zlib.DEFLATED, 31)
        size = len(c.compress(self.envelope) + c.flush())
        self.zlib.setdefault(level, []).append(((time.perf_counter() - t0) * 1000, size))

    def summary(self, level: int) -> dict:
        g, z = self.gzip.get(level, []), self.zlib.get(level, [])
        out: dict = {}
        if g:
            out["gzip"] = {"ms": statistics.median(x[0] for x in g), "fsync_ms": statistics.median(x[1] for x in g),
                           "ms_all": [round(x[0], 1) for x in g], "fsync_ms_all": [round(x[1], 1) for x in g],
                           "compressed_bytes": g[-1][2]}
        if z:
            out["zlib"] = {"ms": statistics.median(x[0] for x in z), "ms_all": [round(x[0], 1) for x in z],
                           "compressed_bytes": z[-1][1]}
        return out


def doryd_saves(opts, level: int, ref: Reference, workdir: Optional[Path] = None) -> tuple[dict, Instance]:
    """`doryd demo --state-bytes N` at `snapshot_level` `level`: SIGUSR1 saves one at a time, each followed by one
    gzip -N and one zlib run (which also gives the counter time to move, so no save is skipped as unchanged), then
    SIGTERM (a `shutdown` save). `workdir` holds a prepared state directory (a restore) or is None (a first start)."""
    server = doryd_server(opts.doryd, DORY_SNAPSHOT_LEVEL=str(level), DORY_SNAPSHOT_INTERVAL_SEC="0")
    inst = start_ready(server, state_bytes=opts.snapshot_bytes, limit=180.0, workdir=workdir)
    logp = inst.workdir / "server.log"
    res: dict = {"level": level, "ready_ms": inst.ready_sec * 1000, "pre_main_ms": pre_main_sec(inst) * 1000,
                 "decision": decision_of(inst).get("strategy", "?")}
    startup = [r for r in saved_records(logp) if r.get("reason") == "startup"]
    if startup:
        res["startup_save_ms"] = float(startup[0]["duration_ms"])
    ref.take_input(inst.workdir / "state")
    ref.run_once(level)  # warm-up: the input into the page cache, gzip's binary, zlib's tables
    ref.gzip.pop(level, None)
    ref.zlib.pop(level, None)
    saves = []
    for _ in range(opts.snapshot_runs):
        time.sleep(0.15)
        before = len(saved_records(logp))
        os.kill(inst.popen.pid, signal.SIGUSR1)
        rec = wait_for(f"`snapshot saved` after SIGUSR1 (level {level})", inst,
                       lambda: (lambda s: s[before] if len(s) > before else None)(saved_records(logp)))
        if rec.get("reason") != "sigusr1":
            raise BenchError(f"expected a sigusr1 save, got {rec}")
        saves.append({"ms": float(rec["duration_ms"]), "raw": int(rec["raw_bytes"]), "gz": int(rec["compressed_bytes"])})
        ref.run_once(level)
    sec, code, _ = stop(inst)
    shutdown = [r for r in saved_records(logp) if r.get("reason") == "shutdown"]
    res.update(
        save_ms=statistics.median(s["ms"] for s in saves),
        save_ms_all=[s["ms"] for s in saves],
        raw_bytes=saves[-1]["raw"],
        compressed_bytes=saves[-1]["gz"],
        sigterm_ms=sec * 1000,
        exit_code=code,
        shutdown_save_ms=float(shutdown[-1]["duration_ms"]) if shutdown else None,
    )
    res["mb_s"] = res["raw_bytes"] / 1e6 / (res["save_ms"] / 1000) if res["save_ms"] > 0 else None
    res.update(ref.summary(level))
    # Throughput ratios doryd ÷ gzip per save and the gzip run right after it (same load), then their median.
    g_runs = ref.gzip.get(level, [])
    if len(g_runs) == len(saves):
        res["paired_ratio"] = statistics.median(g[0] / s["ms"] for g, s in zip(g_runs, saves) if s["ms"] > 0)
        res["paired_ratio_fsync"] = statistics.median(g[1] / s["ms"] for g, s in zip(g_runs, saves) if s["ms"] > 0)
    g = res.get("gzip", {})
    log(f"doryd level {level}: saves {res['save_ms_all']} ms of {res['raw_bytes']} B → {res['mb_s']:.1f} MB/s; "
        f"gzip -{level} {g.get('ms_all')} ms, +fsync {g.get('fsync_ms_all')}; zlib {res.get('zlib', {}).get('ms_all')} ms; "
        f"ready {res['ready_ms']:.0f} ms ({res['pre_main_ms']:.0f} ms before main), {res['decision']}")
    return res, inst


def section_snapshot(opts) -> tuple[str, dict]:
    title = f"## Snapshots: {opts.snapshot_bytes / 1048576:g} MiB state"
    server = doryd_server(opts.doryd)
    if server.missing:
        log(f"snapshot: skipped, doryd {server.missing}")
        return f"{title}\n\ndoryd {server.missing}: nothing measured.", {"missing": server.missing}
    res: dict = {"version": server.version, "load_start": loadavg()}
    try:
        tmp = PROCS.tempdir("gzip")
        ref = Reference(shutil.which("gzip"), tmp)
        res["filesystem"] = filesystem_of(tmp)
        # 1. level 1 from a first start; its final snapshot is the restore template.
        levels: dict[int, dict] = {}
        levels[1], first = doryd_saves(opts, 1, ref)
        res["envelope_bytes"] = len(ref.envelope)
        template = PROCS.tempdir("snapshot-template")
        shutil.copytree(first.workdir / "state", template / "state", ignore=shutil.ignore_patterns("*.sock", "lock"))

        # 2. level 6 on a copy of that state directory: also one restore with the padding a key the demo knows.
        wd = PROCS.tempdir("doryd-restore-padded")
        shutil.copytree(template / "state", wd / "state")
        levels[6], _ = doryd_saves(opts, 6, ref, workdir=wd)
        res["doryd"] = levels

        # 3. restore, alternating with empty first starts: the demo without padding, so the `padding` key of the
        # snapshot is unknown (logged, ignored), no padding is generated, and the startup save is a small new
        # generation.
        plain = doryd_server(opts.doryd)
        empty, restored, decisions = [], [], set()
        for _ in range(opts.snapshot_runs):
            inst = start_ready(plain)
            empty.append(inst.ready_sec * 1000)
            _kill_quietly(inst.popen.pid)
            wait_exit(inst.popen, 10)
            wd = PROCS.tempdir("doryd-restore")
            shutil.copytree(template / "state", wd / "state")
            inst = start_ready(plain, workdir=wd, limit=60.0)
            restored.append(inst.ready_sec * 1000)
            decisions.add(decision_of(inst).get("strategy", "?"))
            _kill_quietly(inst.popen.pid)
            wait_exit(inst.popen, 10)
        res["restore"] = {
            "empty_ready_ms": statistics.median(empty), "empty_ready_ms_all": [round(x, 2) for x in empty],
            "restore_ready_ms": statistics.median(restored), "restore_ready_ms_all": [round(x, 2) for x in restored],
            "decisions": sorted(decisions),
        }
        log(f"restore: empty {res['restore']['empty_ready_ms_all']} ms, restoring {res['restore']['restore_ready_ms_all']} ms, "
            f"decision {sorted(decisions)}")
    except BenchError as e:
        res["error"] = str(e)
        log(f"snapshot: ERROR {e}")
    finally:
        PROCS.cleanup()
    res["load_end"] = loadavg()
    return snapshot_table(opts, title, res), res


def snapshot_table(opts, title: str, res: dict) -> str:
    lines = [title, ""]
    if "doryd" not in res or "restore" not in res:
        return "\n".join(lines + [f"error: {res.get('error', 'incomplete')}"])
    n = opts.snapshot_runs

    def mbs(raw: int, ms: Optional[float]) -> Optional[float]:
        return raw / 1e6 / (ms / 1000) if ms else None

    def cell(v: Optional[float], ms: Optional[float]) -> str:
        return "–" if v is None else f"{v:.1f} MB/s ({ms:.0f} ms)"

    raw = res["envelope_bytes"]
    lines += [
        f"| save, gzip level (median of {n}) | doryd (durable save) | gzip -N + fsync | gzip -N, no fsync | zlib in-process, no I/O "
        "| doryd ÷ gzip+fsync | doryd ÷ gzip | target (doryd) | met |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for level in (1, 6):
        d = res["doryd"][level]
        g = d.get("gzip", {})
        z = d["zlib"]
        dv = d["mb_s"]
        gf, gp, zv = mbs(raw, g.get("fsync_ms")), mbs(raw, g.get("ms")), mbs(raw, z["ms"])
        rf, rp = d.get("paired_ratio_fsync"), d.get("paired_ratio")
        met = "–" if rf is None else ("yes" if rf >= SNAPSHOT_TARGET else "**no**")
        lines.append(
            f"| level {level} | {cell(dv, d['save_ms'])} | {cell(gf, g.get('fsync_ms'))} | {cell(gp, g.get('ms'))} | "
            f"{cell(zv, z['ms'])} | {'–' if rf is None else f'{rf:.2f}×'} | {'–' if rp is None else f'{rp:.2f}×'} | "
            f"≥ {SNAPSHOT_TARGET}× gzip -{level} | {met} |"
        )
    r = res["restore"]
    padded = res["doryd"][6]
    padded_ready = padded["ready_ms"] - padded["pre_main_ms"]
    lines += [
        "",
        "| restore | spawn → ready | minus empty start |",
        "|---|---|---|",
        f"| empty state, first start (median of {n}) | {r['empty_ready_ms']:.1f} ms | – |",
        f"| {opts.snapshot_bytes / 1048576:g} MiB snapshot, level 1 (median of {n}) | {r['restore_ready_ms']:.1f} ms | "
        f"{r['restore_ready_ms'] - r['empty_ready_ms']:.1f} ms |",
        f"| same, with the padding a known key (1 run, the level-6 start; {padded['pre_main_ms']:.0f} ms of padding "
        f"generation before main left out) | {padded_ready:.0f} ms | {padded_ready - r['empty_ready_ms']:.0f} ms |",
        "",
        "- Ratios (and \"met\"): median over the %d saves of gzip's time ÷ doryd's save time, each save paired with "
        "the gzip run right after it; MB/s = envelope bytes ÷ median time (10⁶ bytes)." % n,
        "- Sizes: snapshot envelope %s B (state: counter + %s B of random letters and digits); compressed by doryd "
        "level 1 %s B, level 6 %s B; by gzip -1 %s B, gzip -6 %s B."
        % (f"{raw:,}", f"{opts.snapshot_bytes - 32:,}", f"{res['doryd'][1]['compressed_bytes']:,}",
           f"{res['doryd'][6]['compressed_bytes']:,}",
           f"{res['doryd'][1].get('gzip', {}).get('compressed_bytes', 0):,}",
           f"{res['doryd'][6].get('gzip', {}).get('compressed_bytes', 0):,}"),
        "- doryd: `duration_ms` of the `snapshot saved` log line (capture → JSON → hash → gzip → write → fsync → rename → "
        "directory fsync; whole milliseconds) of SIGUSR1 saves, level 1: %s ms, level 6: %s ms. Shutdown save "
        "(SIGTERM → exit %.0f / %.0f ms): %s / %s ms."
        % (res["doryd"][1]["save_ms_all"], res["doryd"][6]["save_ms_all"], res["doryd"][1]["sigterm_ms"],
           res["doryd"][6]["sigterm_ms"], res["doryd"][1]["shutdown_save_ms"], res["doryd"][6]["shutdown_save_ms"]),
        "- All runs, ms: " + "; ".join(
            f"gzip -{lv} {res['doryd'][lv].get('gzip', {}).get('ms_all')} (+fsync {res['doryd'][lv].get('gzip', {}).get('fsync_ms_all')}), "
            f"zlib {lv} {res['doryd'][lv]['zlib']['ms_all']}" for lv in (1, 6)) + ".",
        "- gzip: `gzip -N -n -c envelope.json > out` on the envelope of doryd's first snapshot (decompressed), timed "
        "to gzip's exit and to an `fsync` of out (no rename, no directory fsync); zlib: Python's "
        "`zlib.compressobj(N, DEFLATED, 31)` on the same bytes, the library doryd links. One gzip and one zlib run "
        "right after each doryd save, so each trio sees the same machine load; one untimed warm-up each. Every file "
        "is on the temporary directory's filesystem (%s). Load average %s at the section's start, %s at its end."
        % (res.get("filesystem", "?"), res.get("load_start", "?"), res.get("load_end", "?")),
        "- Restore: alternating with the empty starts; the snapshot directory copied afresh for each start (page "
        "cache warm); recovery decision %s. The "
        "demo without `--state-bytes` restores the counter and ignores the unknown `padding` key, so its startup save "
        "is a small new generation; with the key known (the level-6 run) the startup save is skipped as unchanged."
        % ", ".join(f"`{x}`" for x in r["decisions"] + ([padded["decision"]] if padded["decision"] not in r["decisions"] else [])),
    ]
    if res.get("error"):
        lines.append(f"- error: {res['error']}")
    return "\n".join(lines)

# --------------------------------------------------------------------------- events section

EVENT_TOKEN = "tok-0123456789abcdef"
# The on_schedule example of event-pipeline.md §6.5 with its upgrade object: the same event for all three rows.
SCHEDULE_EVENT = (
    '{"op": "on_schedule", "token": "long-lived-schedule-token", "d": {"schedule_id": "123", "organisation_id": "2", '
    '"upgrade": {"agent_id": "1", "organisation_id": "2", "app_key": "my_app", "deployment_config": {"APP_ID": "42"}, '
    '"ui_state": {}, "ui_cmds": null, "tag_values": {"my_app": {"temp": 20}}, "connection_data": null, '
    '"token": "full-token"}}}'
)
EVENTS_CONFIG = """events:
  app_key: my_app
  app_id: "42"
  agent_id: "1"
  organisation_id: "2"
"""


def last_json_line(text: str) -> dict:
    for line in reversed(text.strip().splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    raise BenchError(f"no JSON result in: {text[-500:]}")


def run_result(argv: list, limit: float, stdout_is_log: bool) -> dict:
    """Runs a measuring program; its result is the last JSON line of stdout (or of stderr when stdout is its log)."""
    r = subprocess.run([str(a) for a in argv], capture_output=True, text=True, timeout=limit, cwd=REPO)
    if r.returncode != 0:
        raise BenchError(f"{Path(str(argv[0])).name} exited {r.returncode}: {(r.stderr or r.stdout)[-800:]}")
    return last_json_line(r.stderr if stdout_is_log else r.stdout)


def metrics_text(port: int) -> Optional[bytes]:
    """doryd's /metrics body, or None when nothing answers."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
            s.sendall(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            body = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    return body
                body += chunk
    except OSError:
        return None


def metric_value(port: int, name: str) -> Optional[float]:
    """One unlabelled sample of doryd's /metrics."""
    body = metrics_text(port)
    m = re.search(rb"^" + re.escape(name.encode()) + rb" ([0-9.e+-]+)$", body or b"", re.M)
    return float(m.group(1)) if m else None


def metric_sum(port: int, family: str) -> Optional[float]:
    """The sum of every labelled sample of one /metrics family."""
    body = metrics_text(port)
    if body is None:
        return None
    pattern = rb"^" + re.escape(family.encode()) + rb"\{[^}]*\} ([0-9.e+-]+)$"
    return sum(float(m.group(1)) for m in re.finditer(pattern, body, re.M))


def events_ingest(opts) -> dict:
    """`doryd events` on loopback; wrk POSTs the event over keep-alive connections for opts.duration seconds.
    Acknowledged = 202 answers (each after the fsync that covers its queue record). Then the backlog processing rate."""
    wd = PROCS.tempdir("doryd-events")
    (wd / "events.yaml").write_text(EVENTS_CONFIG)
    script = wd / "post.lua"
    script.write_text(
        'wrk.method = "POST"\n'
        f"wrk.body = {json.dumps(SCHEDULE_EVENT)}\n"
        'wrk.headers["Content-Type"] = "application/json"\n'
        f'wrk.headers["Authorization"] = "Bearer {EVENT_TOKEN}"\n'
    )
    port = free_port()
    env = clean_env(DORY_HEALTH_HOST="127.0.0.1", DORY_HEALTH_PORT=str(port), DORY_STATE_DIR=str(wd / "state"),
                    DORY_PROCESSOR_ID="bench", DORY_CONTROL_TOKEN=EVENT_TOKEN, DORY_EVENT_QUEUE_MAX="1000000",
                    DORY_LOG_LEVEL="info")
    p = spawn([str(opts.doryd), "events", "--config", str(wd / "events.yaml")], wd, env)
    deadline = time.monotonic() + 20
    while http_status(port, "/ready") != 200:
        if p.poll() is not None or time.monotonic() > deadline:
            raise BenchError(f"doryd events did not become ready: {log_hint(wd)}")
        time.sleep(0.01)
    r = subprocess.run(
        [opts.wrk, "-t2", f"-c{opts.ingest_connections}", f"-d{opts.duration:g}s", "-s", str(script),
         f"http://127.0.0.1:{port}/v1/events"],
        capture_output=True, text=True, timeout=opts.duration + 30)
    if r.returncode != 0:
        raise BenchError(f"wrk failed: {r.stderr.strip() or r.stdout.strip()}")
    m = re.search(r"(\d+) requests in ([\d.]+)(ms|s|m)\b", r.stdout)
    total = int(m.group(1))
    seconds = float(m.group(2)) * {"ms": 0.001, "s": 1.0, "m": 60.0}[m.group(3)]
    non2xx = re.search(r"Non-2xx or 3xx responses:\s*(\d+)", r.stdout)
    refused = int(non2xx.group(1)) if non2xx else 0
    accepted = total - refused
    res = {"acked": accepted, "refused": refused, "seconds": seconds, "acked_per_s": accepted / seconds,
           "fsyncs": metric_value(port, "dory_event_queue_fsyncs_total")}
    # Processing while backlogged: each queued event costs its own queue round and a durable summary append.
    done_before = metric_sum(port, "dory_event_invocations_total")
    t0 = time.monotonic()
    time.sleep(opts.backlog_sec)
    done_after = metric_sum(port, "dory_event_invocations_total")
    res["processed_per_s"] = (done_after - done_before) / (time.monotonic() - t0) if done_after is not None else None
    res["left"] = metric_value(port, "dory_event_queue_depth")
    stop_at = time.monotonic()
    p.send_signal(signal.SIGTERM)
    res["exit"] = wait_exit(p, 60)
    res["stop_s"] = time.monotonic() - stop_at
    return res



def section_events(opts) -> tuple[str, dict]:
    title = "## Events: the pipeline in process, and durable HTTP ingest"
    bench_bin = opts.doryd.parent / "doryd-bench"
    res: dict = {"load_start": loadavg()}
    rows = []
    try:
        if not bench_bin.is_file():
            raise BenchError(f"{bench_bin} not built (swift build -c release)")
        log("events: doryd pipeline in process (summaries in memory)")
        res["doryd_memory"] = run_result([bench_bin, "events-pipeline", "--events", opts.events], 300, False)
        log("events: doryd pipeline in process (summaries appended and fsynced to channel files)")
        files = PROCS.tempdir("doryd-channels")
        res["doryd_files"] = run_result([bench_bin, "events-pipeline", "--events", max(opts.events // 20, 1000),
                                         "--warmup", 200, "--channels", files], 300, False)
        log("events: pydoover run_app with an in-memory HTTP recorder")
        res["pydoover"] = run_result([opts.python, BENCH / "pydoover_pipeline.py", "--events", opts.pydoover_events],
                                     600, True)
        log("events: doryd events, POST /v1/events with wrk")
        res["ingest"] = events_ingest(opts)
    except (BenchError, subprocess.TimeoutExpired, OSError, ValueError) as e:
        res["error"] = str(e)
    res["load_end"] = loadavg()

    py = res.get("pydoover", {}).get("events_per_s")

    def row(name: str, key: str, target: str, met: Optional[bool], note: str) -> str:
        v = res.get(key, {}).get("events_per_s")
        cell = f"{v:,.0f}" if v else "–"
        vs = f"{v / py:.1f}×" if v and py else "–"
        verdict = "–" if met is None else ("yes" if met else "**no**")
        return f"| {name} | {cell} | {vs} | {target} | {verdict} | {note} |"

    mem = res.get("doryd_memory", {}).get("events_per_s")
    rows.append(row("doryd pipeline, in process, summaries in memory", "doryd_memory", "≥ 50,000/s, ≥ 20× pydoover",
                    (mem >= 50000 and (py is None or mem >= 20 * py)) if mem else None,
                    f"{res.get('doryd_memory', {}).get('events', '?')} events, logs at INFO to /dev/null"))
    rows.append(row("doryd pipeline, in process, summaries to channel files", "doryd_files", "–", None,
                    "each summary appended and fsynced (§8.1)"))
    rows.append(row("pydoover 1.18.3 `run_app`, HTTP replaced by an in-memory recorder", "pydoover", "–", None,
                    f"{res.get('pydoover', {}).get('events', '?')} events, logs at INFO to /dev/null"))
    ing = res.get("ingest", {})
    if ing:
        ok = ing["acked_per_s"] >= 5000
        rows.append(f"| doryd events, POST /v1/events (wrk -t2 -c{opts.ingest_connections}, {ing['seconds']:.0f} s) | "
                    f"{ing['acked_per_s']:,.0f} acknowledged | – | ≥ 5,000/s | {'yes' if ok else '**no**'} | "
                    f"{ing['acked']:,} × 202 after their fsync, {ing['refused']} refused, "
                    f"{ing['fsyncs'] or 0:,.0f} queue fsyncs |")
    lines = [title, "", "| what | events/s | vs pydoover | target | met | notes |", "|---|---|---|---|---|---|", *rows, ""]
    if ing:
        lines.append(
            f"- Ingest: the queue then held a backlog; doryd processed it at {ing.get('processed_per_s') or 0:,.0f} "
            f"events/s ({opts.backlog_sec:g} s sampled): each queued event costs its own queue round and a durable "
            "summary append (fsync), so processing is bound by fsync, not by the pipeline. SIGTERM with "
            f"{ing.get('left') or 0:,.0f} events still queued: exit {ing['exit']} after {ing['stop_s']:.2f} s (they "
            "stay in the queue for the next start).")
    lines.append(
        "- The same event for every row: the on_schedule example of event-pipeline.md §6.5 with its `upgrade` object, "
        "parsed from JSON text per event, a handler that does nothing, one summary per event. "
        "Load average %s at the section's start, %s at its end." % (res.get("load_start"), res.get("load_end")))
    if res.get("error"):
        lines.append(f"- error: {res['error']}")
    return "\n".join(lines), res


SECTIONS: dict[str, Callable] = {
    "probe": section_probe,
    "snapshot": section_snapshot,
    "events": section_events,
}


# --------------------------------------------------------------------------- main


def machine_block(opts) -> str:
    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = "?"
    try:
        kb = int(re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text()).group(1))
        mem = f"{kb / 1048576:.1f} GiB"
    except (OSError, AttributeError):
        pass
    try:
        load = Path("/proc/loadavg").read_text().split()[0]
    except OSError:
        load = "?"
    wrk_v = subprocess.run([opts.wrk, "-v"], capture_output=True, text=True).stdout.splitlines()
    return (
        f"Machine: {cpu}, {os.cpu_count()} CPUs, {mem} RAM, Linux {platform.release()}, "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, load average {load} at start "
        "(other work on the machine skews every column). "
        f"Tools: {wrk_v[0].split(' Copyright')[0] if wrk_v else 'wrk ?'}, Python {platform.python_version()}."
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--doryd", type=Path, default=Path(os.environ.get("DORYD_BIN", REPO / ".build/release/doryd")))
    ap.add_argument("--python", type=Path, default=BENCH / ".venv/bin/python",
                    help="interpreter with dory-sdk installed")
    ap.add_argument("--nginx", default=shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin"))
    ap.add_argument("--wrk", default=shutil.which("wrk"))
    ap.add_argument("--sections", default=",".join(SECTIONS), help="comma-separated: " + ", ".join(SECTIONS))
    ap.add_argument("--servers", default="doryd,python,nginx", help="columns to measure (default all)")
    ap.add_argument("--startup-runs", type=int, default=5)
    ap.add_argument("--sigterm-runs", type=int, default=3)
    ap.add_argument("--state-bytes", type=int, default=1048576)
    ap.add_argument("--duration", type=float, default=5.0, help="wrk seconds")
    ap.add_argument("--connections", type=int, default=50)
    ap.add_argument("--idle-sec", type=float, default=1.0, help="idle time before reading RSS")
    ap.add_argument("--settle-sec", type=float, default=0.5, help="run time before the SIGTERM")
    ap.add_argument("--snapshot-bytes", type=int, default=10485760, help="demo state size of the snapshot section")
    ap.add_argument("--snapshot-runs", type=int, default=5, help="saves per level, gzip runs, restores")
    ap.add_argument("--events", type=int, default=100000, help="events of the in-process doryd pipeline row")
    ap.add_argument("--pydoover-events", type=int, default=5000, help="events of the pydoover row")
    ap.add_argument("--ingest-connections", type=int, default=64, help="wrk connections of the ingest row")
    ap.add_argument("--backlog-sec", type=float, default=5.0, help="seconds to sample backlog processing after ingest")
    ap.add_argument("--json", type=Path, help="also write the raw results here")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directories (logs)")
    opts = ap.parse_args()

    if not opts.wrk:
        print("bench: wrk not found (bench/run.sh installs it)", file=sys.stderr)
        return 2
    PROCS.keep = opts.keep
    atexit.register(PROCS.cleanup)
    for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, _on_signal)

    started = time.perf_counter()
    out = ["# doryd bench", "", machine_block(opts), ""]
    all_results = {}
    for name in [s.strip() for s in opts.sections.split(",") if s.strip()]:
        if name not in SECTIONS:
            print(f"bench: unknown section {name!r}; known: {', '.join(SECTIONS)}", file=sys.stderr)
            return 2
        block, res = SECTIONS[name](opts)
        out += [block, ""]
        all_results[name] = res
    out.append(f"_Bench took {time.perf_counter() - started:.0f} s; load average {loadavg()} (1, 5, 15 min) at the end._")
    print("\n".join(out))
    if opts.json:
        opts.json.write_text(json.dumps(all_results, indent=2, default=str) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
