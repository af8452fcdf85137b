#!/usr/bin/env python3
"""pyws benchmark suite: pyws against its peers and a C reference.

    python3 bench/run.py            # the full run, a few minutes
    python3 bench/run.py --quick    # a smoke run of about a minute

Builds the C load generator and reference server into bench/build/, starts
every server in turn on 127.0.0.1 (pinned to core 0, the load generator to
core 1), interleaves servers round by round, and writes into bench/results/:
results.json (machine, configuration, every cell, medians and ratios),
table.md (the markdown printed at the end) and chart.png.
See bench/README.md for what each scenario measures.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import queue
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass, field, replace
from importlib import metadata
from pathlib import Path
from typing import Any, Dict, List, Optional, Set, Tuple

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
BUILD = BENCH / "build"
SERVERS_DIR = BENCH / "servers"
LOADGEN = BUILD / "loadgen"
REF_SERVER = BUILD / "ref_server"

MAX_MESSAGE_SIZE = 16 << 20  # every server accepts 1 MiB messages with room to spare
CORE_SERVER, CORE_LOADGEN = "0", "1"
#: What a gevent mode of pyws (monkey-patched, or gunicorn's gevent worker)
#: should reach of unpatched pyws's figure, measured in the same round.
GEVENT_TARGET = 0.85


# ---- what runs --------------------------------------------------------------

@dataclass
class Server:
    key: str
    label: str
    how: str                    # one line: what runs, under which server
    script: Optional[str]       # in bench/servers/, or None for the C reference
    modules: List[str]          # imported to tell whether it is installed
    packages: List[str]         # distributions whose versions are recorded
    # Extra command-line options: the C server's (--broadcast), or a
    # script's own (uvicorn_echo.py's --ws, the asyncio servers' --loop).
    options: List[str] = field(default_factory=list)
    # Run the script under gevent's monkey.patch_all() (servers/patched.py).
    patched: bool = False
    # gunicorn's options (worker class...): then script is the "module:app"
    # that gunicorn serves, from bench/servers/ (see gunicorn_server()).
    gunicorn: List[str] = field(default_factory=list)
    # A gevent mode of pyws: the unpatched pyws server it is compared with.
    against: Optional[str] = None
    # Where the server imports pyws from (--baseline): None, this work tree.
    pyws_root: Optional[str] = None
    available: bool = True
    reason: str = ""
    versions: Dict[str, str] = field(default_factory=dict)

    def argv(self, port: int, capacity: int) -> List[str]:
        """The command line; ``capacity``: the most connections a run opens
        at once, for servers that must be sized for them (gunicorn's)."""
        if self.script is None:
            return [str(REF_SERVER), "--port", str(port), "--max-size", str(MAX_MESSAGE_SIZE),
                    *self.options]
        if self.gunicorn:
            return [sys.executable, "-m", "gunicorn", *self.gunicorn, "--workers", "1",
                    "--bind", f"127.0.0.1:{port}", "--chdir", str(SERVERS_DIR),
                    # gthread: a thread per connection; both: the cap on
                    # connections open at once (1000 by default).
                    "--threads", str(capacity), "--worker-connections", str(capacity),
                    "--env", f"PYWS_MAX_MESSAGE_SIZE={MAX_MESSAGE_SIZE}",
                    # A fixed path shared by every gunicorn on the machine.
                    "--no-control-socket",
                    # SIGTERM stops it within Running.stop()'s wait.
                    "--graceful-timeout", "2", self.script]
        script = ["patched.py", self.script] if self.patched else [self.script]
        return [sys.executable, *(str(SERVERS_DIR / name) for name in script),
                "--port", str(port), "--max-size", str(MAX_MESSAGE_SIZE), *self.options]


def gunicorn_server(key: str, label: str, how: str, app: str, worker: List[str],
                    modules: List[str], packages: List[str],
                    against: Optional[str] = None) -> Server:
    """A server run as ``gunicorn -k ... --workers 1 module:app``, the app from
    bench/servers/: the master and its one worker are both pinned (taskset
    covers the process it starts and its children); memory is the worker's."""
    return Server(key, label, how, app, ["gunicorn", *modules], ["gunicorn", *packages],
                  gunicorn=worker, against=against)


def uvicorn_server(key: str, label: str, ws: str, modules: List[str], packages: List[str],
                   loop: str = "asyncio") -> Server:
    """uvicorn (one process, httptools, lifespan and access log off) serving
    the raw ASGI echo app of servers/uvicorn_echo.py with ``--ws ws``."""
    uvloop = ["uvloop"] if loop == "uvloop" else []
    return Server(key, label, f"uvicorn --ws {ws} --http httptools --loop {loop}, raw ASGI "
                  "echo app", "uvicorn_echo.py", ["uvicorn", "httptools", *modules, *uvloop],
                  ["uvicorn", "httptools", *packages, *uvloop],
                  options=["--ws", ws, "--loop", loop])


REF = "c-ref"

ECHO_SERVERS = [
    Server("pyws", "pyws", "pyws.WebSocketServer (gevent pywsgi), plain WSGI app",
           "pyws_echo.py", ["gevent", "pyws._core"], ["gevent"]),
    Server("pyws-patched", "pyws patched",
           "pyws.WebSocketServer, plain WSGI app, after gevent's monkey.patch_all()",
           "pyws_echo.py", ["gevent", "pyws._core"], ["gevent"], patched=True, against="pyws"),
    gunicorn_server("pyws-gunicorn-gevent", "pyws gunicorn gevent",
                    "gunicorn -k pyws.gunicorn.GeventWebSocketWorker -w 1, plain WSGI app "
                    "(gunicorn monkey-patches)", "wsgi_echo:app",
                    ["--worker-class", "pyws.gunicorn.GeventWebSocketWorker"],
                    ["pyws.gunicorn"], ["gevent"], against="pyws"),
    gunicorn_server("pyws-sock-gthread", "pyws Sock gthread",
                    "Flask + pyws.flask.Sock under gunicorn -k gthread -w 1, a thread per "
                    "connection", "pywsflask_echo:app", ["--worker-class", "gthread"],
                    ["flask", "pyws.flask"], ["Flask"]),
    Server("gevent-websocket", "gevent-websocket",
           "gevent WSGIServer + geventwebsocket.handler.WebSocketHandler",
           "geventws_echo.py", ["gevent", "geventwebsocket"], ["gevent-websocket", "gevent"]),
    Server("flask-sock", "flask-sock", "Flask + flask-sock (simple-websocket) on threaded Werkzeug",
           "flasksock_echo.py", ["flask_sock", "simple_websocket"],
           ["flask-sock", "simple-websocket", "Flask", "Werkzeug"]),
    Server("websockets", "websockets", "websockets.asyncio.server.serve (asyncio)",
           "websockets_echo.py", ["websockets.asyncio.server"], ["websockets"]),
    Server("aiohttp", "aiohttp", "aiohttp web.WebSocketResponse (asyncio)",
           "aiohttp_echo.py", ["aiohttp"], ["aiohttp"]),
    Server("picows", "picows", "picows ws_create_server, frame-level listener (asyncio)",
           "picows_echo.py", ["picows"], ["picows"]),
    # Issue #17: pyws under asyncio and ASGI, and what it is measured against.
    Server("pyws-asyncio", "pyws asyncio",
           "pyws.asyncio.serve, async for msg in ws: await ws.send(msg) (asyncio)",
           "pyws_asyncio_echo.py", ["pyws.asyncio"], []),
    uvicorn_server("uvicorn-pyws", "uvicorn pyws", "pyws.uvicorn:WebSocketProtocol",
                   ["pyws.uvicorn"], []),
    uvicorn_server("uvicorn-websockets", "uvicorn websockets", "websockets",
                   ["websockets.legacy.server"], ["websockets"]),
    uvicorn_server("uvicorn-websockets-sansio", "uvicorn websockets-sansio",
                   "websockets-sansio", ["websockets.server"], ["websockets"]),
    uvicorn_server("uvicorn-wsproto", "uvicorn wsproto", "wsproto", ["wsproto"], ["wsproto"]),
    # The same on uvloop, as many deployments run them.
    Server("pyws-asyncio-uvloop", "pyws asyncio uvloop", "pyws.asyncio.serve as pyws-asyncio, "
           "on uvloop", "pyws_asyncio_echo.py", ["pyws.asyncio", "uvloop"], ["uvloop"],
           options=["--loop", "uvloop"]),
    Server("picows-uvloop", "picows uvloop", "picows as picows, on uvloop", "picows_echo.py",
           ["picows", "uvloop"], ["picows", "uvloop"], options=["--loop", "uvloop"]),
    uvicorn_server("uvicorn-pyws-uvloop", "uvicorn pyws uvloop",
                   "pyws.uvicorn:WebSocketProtocol", ["pyws.uvicorn"], [], loop="uvloop"),
    uvicorn_server("uvicorn-websockets-uvloop", "uvicorn websockets uvloop", "websockets",
                   ["websockets.legacy.server"], ["websockets"], loop="uvloop"),
    Server(REF, "C (wslay)", "bench/ref_server.c: epoll, one thread, wslay event API",
           None, [], []),
]

BROADCAST_SERVERS = [
    Server("pyws-hub", "pyws Hub", "pyws.Hub room: hub.broadcast() per message",
           "pyws_broadcast.py", ["gevent", "pyws._core"], ["gevent"]),
    Server("pyws-hub-patched", "pyws Hub patched",
           "pyws.Hub room as pyws-hub, after gevent's monkey.patch_all()",
           "pyws_broadcast.py", ["gevent", "pyws._core"], ["gevent"], patched=True,
           against="pyws-hub"),
    Server("gevent-websocket-loop", "gevent-websocket loop",
           "gevent-websocket: for ws in clients: ws.send(msg)",
           "geventws_broadcast.py", ["gevent", "geventwebsocket"], ["gevent-websocket"]),
    Server("c-ref-broadcast", "C fan-out (ceiling)",
           "bench/ref_server.c --broadcast: one send() per member per epoll batch (the ceiling)",
           None, [], [], options=["--broadcast"]),
]
BROADCAST_BASELINE = "gevent-websocket-loop"
#: The fastest Python server known: every pyws mode's ratio to it.
PICOWS = "picows"


@dataclass
class Comparison:
    """One of issue #17's comparisons: ``mine`` / ``against``, same round,
    per echo scenario; ``targets``: scenario key -> the ratio to reach."""
    mine: str
    against: str
    targets: Dict[str, float] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return f"{self.mine}/{self.against}"


#: Issue #17's targets: uvicorn + pyws against uvicorn's websockets (the
#: legacy implementation that --ws websockets still names in uvicorn 0.55,
#: and the sans-I/O one that --ws auto picks and --ws websockets will name
#: later), pyws.asyncio.serve against picows; the same on uvloop.
#: uvicorn + wsproto: no target, its ratio for the record.
ASGI_TARGETS = {"echo-50c-32B": 1.2, "pipeline-10c-1KiB": 1.5}
ASYNCIO_TARGETS = {"echo-50c-32B": 1.0, "pipeline-10c-1KiB": 1.0}
ASGI_COMPARISONS = [
    Comparison("uvicorn-pyws", "uvicorn-websockets", ASGI_TARGETS),
    Comparison("uvicorn-pyws", "uvicorn-websockets-sansio", ASGI_TARGETS),
    Comparison("uvicorn-pyws", "uvicorn-wsproto"),
    Comparison("pyws-asyncio", PICOWS, ASYNCIO_TARGETS),
    Comparison("uvicorn-pyws-uvloop", "uvicorn-websockets-uvloop", ASGI_TARGETS),
    Comparison("pyws-asyncio-uvloop", "picows-uvloop", ASYNCIO_TARGETS),
]


def add_baseline(tree: str) -> None:
    """A copy of every pyws mode that imports pyws from ``tree`` (the same
    server scripts, the other engine), interleaved with the rest."""
    root = str(Path(tree).resolve())
    for servers in (ECHO_SERVERS, BROADCAST_SERVERS):
        for s in pyws_modes(list(servers)):
            servers.append(replace(s, key=f"{s.key}@baseline", label=f"{s.label} (baseline)",
                                   how=f"{s.how}; pyws from {root}",
                                   against=f"{s.against}@baseline" if s.against else None,
                                   pyws_root=root))


def is_pyws(s: Server) -> bool:
    """A server whose WebSockets are pyws's: its own servers and uvicorn
    with pyws's protocol (never a peer of pyws)."""
    return s.key.startswith(("pyws", "uvicorn-pyws"))


def pyws_modes(servers: List[Server]) -> List[Server]:
    return [s for s in servers if is_pyws(s)]


@dataclass
class Scenario:
    key: str
    label: str
    mode: str                   # echo | idle | broadcast
    conns: int
    size: int = 32
    depth: int = 1

    @property
    def baseline(self) -> str:
        return BROADCAST_BASELINE if self.mode == "broadcast" else REF


def scenarios(idle_conns: int, room: int) -> List[Scenario]:
    return [
        Scenario("echo-32B", "1 conn, 32 B", "echo", 1, 32),
        Scenario("echo-1KiB", "1 conn, 1 KiB", "echo", 1, 1024),
        Scenario("echo-64KiB", "1 conn, 64 KiB", "echo", 1, 64 << 10),
        Scenario("echo-1MiB", "1 conn, 1 MiB", "echo", 1, 1 << 20),
        Scenario("echo-50c-32B", "50 conns, 32 B", "echo", 50, 32),
        Scenario("pipeline-10c-1KiB", "10 conns x 8 in flight, 1 KiB", "echo", 10, 1024, 8),
        Scenario("idle", f"{idle_conns} idle conns", "idle", idle_conns),
        Scenario("broadcast-1", f"room of {room}, 1 broadcast in flight", "broadcast", room,
                 32, 1),
        Scenario("broadcast-4", f"room of {room}, 4 broadcasts in flight", "broadcast", room,
                 32, 4),
    ]


# ---- machine, limits, build -------------------------------------------------

def raise_nofile(need: int) -> Dict[str, Any]:
    """Soft (and if need be hard) open-file limit up to what the idle
    scenario needs; children (servers, load generator) inherit it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = max(need, soft)
    try:
        if hard != resource.RLIM_INFINITY and hard < want:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, want))  # needs root
        else:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard if hard != resource.RLIM_INFINITY
                                                        else want, hard))
    except (ValueError, OSError):
        pass
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    shell = subprocess.run(["sh", "-c", "ulimit -n"], capture_output=True, text=True).stdout
    return {"soft": soft, "hard": hard, "ulimit_n_in_children": shell.strip(),
            "enough": soft >= need}


def machine_info() -> Dict[str, Any]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        mem = Path("/proc/meminfo").read_text().splitlines()[0].split(":", 1)[1].strip()
    except (OSError, IndexError):
        pass
    gcc = subprocess.run(["gcc", "--version"], capture_output=True, text=True).stdout
    # The Debian package's version: wslayver.h may lag behind it.
    wslay = ""
    if shutil.which("dpkg-query"):
        wslay = subprocess.run(["dpkg-query", "-W", "-f=${Version}", "libwslay-dev"],
                               capture_output=True, text=True).stdout
    if not wslay:
        try:
            m = re.search(r'WSLAY_VERSION\s+"([^"]+)"',
                          Path("/usr/include/wslay/wslayver.h").read_text())
            wslay = m.group(1) if m else ""
        except OSError:
            pass
    return {
        "cpu": cpu, "cores": os.cpu_count(), "memory": mem,
        "kernel": platform.release(), "os": platform.platform(),
        "python": platform.python_version(), "python_impl": platform.python_implementation(),
        "gcc": gcc.splitlines()[0] if gcc else "", "wslay": wslay,
        "loadavg_start": os.getloadavg(),
    }


def pyws_version() -> Dict[str, str]:
    def git(*args: str) -> str:
        r = subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True)
        return r.stdout.strip()
    commit = git("rev-parse", "--short", "HEAD")
    dirty = bool(git("status", "--porcelain", "--", "pyws", "csrc"))
    return {"pyws": f"{commit}{'+dirty' if dirty else ''}" if commit else "unknown"}


def build_c() -> Dict[str, str]:
    """Compile the load generator and the reference server when stale.
    Returns {binary: error} for those that could not be built."""
    BUILD.mkdir(exist_ok=True)
    cc = os.environ.get("CC", "gcc")
    errors = {}
    for src, out, libs in ((BENCH / "loadgen.c", LOADGEN, []),
                           (BENCH / "ref_server.c", REF_SERVER, ["-lwslay"])):
        if out.exists() and out.stat().st_mtime >= src.stat().st_mtime:
            continue
        cmd = [cc, "-O2", "-Wall", "-Wextra", "-o", str(out), str(src), *libs]
        print("build:", " ".join(cmd), file=sys.stderr)
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.stderr:
            print(r.stderr, file=sys.stderr, end="")
        if r.returncode != 0:
            errors[out.name] = (r.stderr.strip().splitlines() or ["compiler failed"])[-1]
    return errors


def child_env(pyws_root: Optional[str] = None) -> Dict[str, str]:
    env = dict(os.environ)
    # The servers import pyws from this work tree (its freshly built engine),
    # whatever else may be installed; a --baseline server from that tree.
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [pyws_root or str(ROOT),
                                                      env.get("PYTHONPATH")]))
    env["PYTHONUNBUFFERED"] = "1"
    return env


def check_available(servers: List[Server], build_errors: Dict[str, str]) -> None:
    for srv in servers:
        if srv.script is None:
            if "ref_server" in build_errors:
                srv.available, srv.reason = False, "did not build: " + build_errors["ref_server"]
            continue
        code = "import " + ", ".join(srv.modules)
        r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           env=child_env(srv.pyws_root), cwd=str(BENCH))
        if r.returncode != 0:
            last = (r.stderr.strip().splitlines() or ["import failed"])[-1]
            srv.available, srv.reason = False, f"not installed ({last})"
            if "pyws" in code:
                srv.reason = f"pyws not built ({last}): run `python3 setup.py build_ext --inplace`"
        for pkg in srv.packages:
            try:
                srv.versions[pkg] = metadata.version(pkg)
            except metadata.PackageNotFoundError:
                pass
        if is_pyws(srv):
            srv.versions.update(pyws_version())


# ---- running servers and the load generator ---------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pinned(core: str, argv: List[str], pin: bool) -> List[str]:
    # taskset execs the command: the child's pid is the server's own.
    return ["taskset", "-c", core, *argv] if pin else argv


def children(pid: int) -> List[int]:
    try:
        return [int(x) for x in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except (OSError, ValueError):
        return []


class Running:
    """One server process on a free port (for gunicorn: its master, which
    starts one worker)."""

    def __init__(self, srv: Server, pin: bool, logdir: Path, capacity: int) -> None:
        self.srv = srv
        self.port = free_port()
        self.log = open(logdir / f"{srv.key}.log", "ab")  # noqa: SIM115 (the server's, closed in stop())
        self.log.write(f"\n==== {dt.datetime.now().isoformat(timespec='seconds')} "
                       f"port {self.port}\n".encode())
        self.log.flush()
        self.proc = subprocess.Popen(pinned(CORE_SERVER, srv.argv(self.port, capacity), pin),
                                     stdout=self.log, stderr=subprocess.STDOUT,
                                     env=child_env(srv.pyws_root), cwd=str(BENCH))
        self._wait_ready()

    def _wait_ready(self, timeout: float = 30.0) -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.srv.key} exited with {self.proc.returncode} "
                                   f"at start-up (see bench/results/logs/{self.srv.key}.log)")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                    if self.srv.gunicorn:
                        # The master listens before its worker has loaded the
                        # app: ready once a plain request is answered (400).
                        s.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                                  b"Connection: close\r\n\r\n")
                        if not s.recv(16).startswith(b"HTTP/"):
                            raise OSError("no answer yet")
                return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"{self.srv.key} did not listen within {timeout:.0f} s")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def pids(self) -> List[int]:
        """The server's processes: gunicorn's master and its worker."""
        return [self.proc.pid, *(children(self.proc.pid) if self.srv.gunicorn else [])]

    def rss_kib(self) -> int:
        # The process that holds the connections: gunicorn's worker (the last
        # pid), not the master; otherwise the server itself.
        for line in Path(f"/proc/{self.pids()[-1]}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        return 0

    def cpu_times(self) -> Tuple[float, float]:
        """The server's user and kernel CPU seconds so far (gunicorn's
        master and worker together)."""
        user = kernel = 0.0
        tick = os.sysconf("SC_CLK_TCK")
        for pid in self.pids():
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                user += int(fields[11]) / tick
                kernel += int(fields[12]) / tick
            except (OSError, IndexError, ValueError):
                pass
        return user, kernel

    def cpu_seconds(self) -> float:
        return sum(self.cpu_times())

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(3)
            except subprocess.TimeoutExpired:
                # gunicorn's worker first, while its master still lives (so
                # that the pid is surely its child), then the master.
                for pid in self.pids()[1:]:
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except OSError:
                        pass
                self.proc.kill()
                self.proc.wait()
        self.log.close()


def loadgen_argv(sc: Scenario, port: int, cfg: argparse.Namespace,
                 duration: Optional[float] = None, warmup: Optional[float] = None) -> List[str]:
    argv = [str(LOADGEN), "--port", str(port), "--mode", sc.mode, "--conns", str(sc.conns),
            "--size", str(sc.size), "--depth", str(sc.depth),
            "--duration", str(duration if duration is not None else cfg.duration),
            "--warmup", str(warmup if warmup is not None else cfg.warmup)]
    if sc.mode == "broadcast":
        argv += ["--path", "/room"]
    if cfg.binary:
        argv.append("--binary")
    return pinned(CORE_LOADGEN, argv, cfg.pin)


def parse_result(out: str, err: str, code: int) -> Dict[str, Any]:
    for line in reversed(out.strip().splitlines()):
        if line.startswith("{") and '"mode"' in line:
            res = json.loads(line)
            if code != 0 and "error" not in res:
                res["error"] = f"load generator exited with {code}"
            return res
    return {"error": (err.strip().splitlines() or [f"load generator exited with {code}"])[-1]}


def machine_busy_seconds() -> float:
    """CPU seconds spent by the whole machine (all cores, all processes)."""
    try:
        f = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        # user nice system idle iowait irq softirq steal ...: all but idle, iowait
        return (sum(f[:8]) - f[3] - f[4]) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return 0.0


def children_cpu_seconds() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def run_traffic(run: Running, sc: Scenario, cfg: argparse.Namespace) -> Dict[str, Any]:
    """An echo or broadcast cell: one load generator run against a server."""
    (user0, sys0), t0 = run.cpu_times(), time.monotonic()
    busy0, kids0 = machine_busy_seconds(), children_cpu_seconds()
    try:
        r = subprocess.run(loadgen_argv(sc, run.port, cfg), capture_output=True, text=True,
                           timeout=cfg.warmup + cfg.duration + 120)
        res = parse_result(r.stdout, r.stderr, r.returncode)
    except subprocess.TimeoutExpired:
        res = {"error": "load generator timed out"}
    wall = time.monotonic() - t0
    if wall > 0:
        # How busy the server was over the whole load generator run (connect,
        # warm-up and close included): near 1.0 means the server set the pace.
        user1, sys1 = run.cpu_times()
        server = (user1 - user0) + (sys1 - sys0)
        res["server_cpu"] = round(server / wall, 3)
        # Its two halves: the server's own code, and the kernel's work for
        # it (system calls, the loopback's TCP, waking the load generator).
        res["server_user_cpu"] = round((user1 - user0) / wall, 3)
        res["server_sys_cpu"] = round((sys1 - sys0) / wall, 3)
        # What everything else on the machine took meanwhile, in cores: on a
        # shared machine, the reason to distrust a cell.
        others = machine_busy_seconds() - busy0 - server - (children_cpu_seconds() - kids0)
        res["others_cpu"] = round(max(others, 0) / wall, 3)
    return res


def run_idle(run: Running, sc: Scenario, cfg: argparse.Namespace) -> Dict[str, Any]:
    """Server memory per held connection: VmRSS with N connections open
    minus VmRSS before, over N."""
    # A short echo first, so that what a server sets up on its first
    # connection (lazy imports, caches) is not charged to the idle ones.
    warm = Scenario("warm", "", "echo", 10, 32)
    subprocess.run(loadgen_argv(warm, run.port, cfg, duration=0.2, warmup=0.05),
                   capture_output=True, timeout=60)
    time.sleep(0.5)
    before = run.rss_kib()
    argv = loadgen_argv(sc, run.port, cfg) + ["--hold", "120", "--timeout", "15"]
    proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    lines: queue.Queue[Optional[str]] = queue.Queue()

    def reader() -> None:
        for line in proc.stdout:  # type: ignore[union-attr]
            lines.put(line)
        lines.put(None)
    threading.Thread(target=reader, daemon=True).start()

    res: Dict[str, Any] = {}
    after = 0
    try:
        line = lines.get(timeout=120)
        if line and '"ready"' in line:
            time.sleep(cfg.settle)  # let the server finish setting up the last ones
            after = run.rss_kib()
            line = ""
        try:  # the go: end the hold (the load generator may have failed already)
            proc.stdin.write("go\n")  # type: ignore[union-attr]
            proc.stdin.close()  # type: ignore[union-attr]
        except BrokenPipeError:
            pass
        proc.wait(timeout=120)
        rest = []
        while (item := lines.get(timeout=5)) is not None:
            rest.append(item)
        res = parse_result((line or "") + "".join(rest), proc.stderr.read(),  # type: ignore
                           proc.returncode)
    except (queue.Empty, subprocess.TimeoutExpired):
        proc.kill()
        res = {"error": "idle load generator timed out"}
    res.update(rss_before_kib=before, rss_after_kib=after)
    if after:
        # Read while all N were open: valid even if some then failed to
        # answer the final echo (reported as the cell's error).
        res["kib_per_conn"] = round((after - before) / sc.conns, 2)
    return res


# ---- the run ----------------------------------------------------------------

def rotate(items: List[Server], r: int) -> List[Server]:
    """A different server goes first each round: no one always follows the same."""
    k = r % len(items) if items else 0
    return items[k:] + items[:k]


def cell(results: List[Dict[str, Any]], rnd: int, sc: Scenario, srv: Server,
         res: Dict[str, Any]) -> None:
    res = {"round": rnd, "scenario": sc.key, "server": srv.key, **res}
    results.append(res)
    if "error" in res:
        shown = "ERROR " + res["error"]
    elif sc.mode == "idle":
        shown = f"{res.get('kib_per_conn', 0):.1f} KiB/conn, {res.get('alive')} alive"
    else:
        shown = (f"{res['msgs_per_s']:>11,.0f} msg/s  p50 {res['latency_us']['p50']:>9,.0f} us"
                 f"  cpu: server {res.get('server_cpu', 0):.2f}"
                 f" loadgen {res.get('loadgen_cpu', 0):.2f} others {res.get('others_cpu', 0):.2f}")
    print(f"  round {rnd}  {sc.key:<18} {srv.key:<26} {shown}", file=sys.stderr, flush=True)


def run_all(cfg: argparse.Namespace, scens: List[Scenario], echo_srv: List[Server],
            bcast_srv: List[Server], logdir: Path) -> List[Dict[str, Any]]:
    results: List[Dict[str, Any]] = []
    echo_sc = [s for s in scens if s.mode == "echo"]
    idle_sc = [s for s in scens if s.mode == "idle"]
    bcast_sc = [s for s in scens if s.mode == "broadcast"]
    # Room for every connection of the largest scenario, and some to spare.
    capacity = max((s.conns for s in scens), default=0) + 64
    for rnd in range(1, cfg.rounds + 1):
        print(f"round {rnd}/{cfg.rounds}", file=sys.stderr, flush=True)
        order = rotate(echo_srv, rnd - 1)
        # Echo: every server started once for the round; they wait in epoll
        # on core 0 while another one is measured.
        running: Dict[str, Running] = {}
        try:
            for sc in echo_sc:
                for srv in order:
                    try:
                        run = running.get(srv.key)
                        if run is None or not run.alive():  # (re)start a crashed one
                            running[srv.key] = run = Running(srv, cfg.pin, logdir, capacity)
                        cell(results, rnd, sc, srv, run_traffic(run, sc, cfg))
                    except RuntimeError as exc:
                        cell(results, rnd, sc, srv, {"error": str(exc)})
        finally:
            for run in running.values():
                run.stop()
        # Idle and broadcast: a fresh process each time, so memory and rooms
        # start from nothing.
        for sc, servers, fn in ([(s, order, run_idle) for s in idle_sc] +
                                [(s, rotate(bcast_srv, rnd - 1), run_traffic) for s in bcast_sc]):
            for srv in servers:
                run = None
                try:
                    run = Running(srv, cfg.pin, logdir, capacity)
                    cell(results, rnd, sc, srv, fn(run, sc, cfg))
                except RuntimeError as exc:
                    cell(results, rnd, sc, srv, {"error": str(exc)})
                finally:
                    if run:
                        run.stop()
    return results


# ---- summary, table, chart --------------------------------------------------

def metric(sc: Scenario, res: Dict[str, Any]) -> Optional[float]:
    """The headline number of a cell: msgs/s, deliveries/s or KiB/conn."""
    if sc.mode == "idle":
        return res.get("kib_per_conn")
    if "error" in res:
        return None
    return res.get("msgs_per_s")


def summarize(scens: List[Scenario], results: List[Dict[str, Any]]) -> Dict[str, Any]:
    summary: Dict[str, Any] = {}
    for sc in scens:
        cells = [r for r in results if r["scenario"] == sc.key]
        by_server: Dict[str, List[Dict[str, Any]]] = {}
        for r in cells:
            by_server.setdefault(r["server"], []).append(r)
        base = {r["round"]: metric(sc, r) for r in by_server.get(sc.baseline, [])}
        out: Dict[str, Any] = {}
        for key, runs in by_server.items():
            ok = [r for r in runs if metric(sc, r) is not None]
            entry: Dict[str, Any] = {"rounds": len(runs), "ok": len(ok),
                                     "errors": sorted({r["error"] for r in runs if "error" in r})}
            if ok:
                vals = [metric(sc, r) for r in ok]
                entry.update(median=statistics.median(vals), min=min(vals), max=max(vals))
                if sc.mode != "idle":
                    for p in ("p50", "p90", "p99"):
                        entry[f"{p}_us"] = statistics.median(r["latency_us"][p] for r in ok)
                    entry["mb_per_s"] = statistics.median(r["mb_per_s"] for r in ok)
                    entry["server_cpu"] = statistics.median(r.get("server_cpu", 0) for r in ok)
                    # Server CPU per message, user and kernel, in microseconds
                    # (cores over the run / messages per second).
                    for half in ("user", "sys"):
                        entry[f"server_{half}_us_per_msg"] = statistics.median(
                            r.get(f"server_{half}_cpu", 0) / metric(sc, r) * 1e6 for r in ok)
                    entry["loadgen_cpu"] = statistics.median(r.get("loadgen_cpu", 0) for r in ok)
                    entry["others_cpu"] = statistics.median(r.get("others_cpu", 0) for r in ok)
                    # fairness: the slowest connection's share of the fastest's
                    entry["fairness"] = statistics.median(
                        r["conn_msgs_min"] / r["conn_msgs_max"] if r.get("conn_msgs_max") else 1.0
                        for r in ok)
                # Ratio to the baseline measured in the same round, then the
                # median of those: drift between rounds cancels out.
                ratios = [metric(sc, r) / base[r["round"]] for r in ok
                          if base.get(r["round"])]
                if ratios:
                    entry["ratio"] = statistics.median(ratios)
            out[key] = entry
        summary[sc.key] = out
    return summary


def versus(scens: List[Scenario], results: List[Dict[str, Any]], mine: str,
           rivals: Set[str], modes: Tuple[str, ...] = ("echo",)) -> Dict[str, Any]:
    """Server ``mine`` against the fastest of ``rivals`` in the same round,
    per scenario (echo, or those of ``modes``): the ratio is taken round by
    round (the servers of a round ran minutes apart at most), then its
    median, range, and in how many rounds ``mine`` was ahead, rather than
    comparing medians that each hide their own spread."""
    out: Dict[str, Any] = {}
    for sc in scens:
        if sc.mode not in modes:
            continue
        rounds: Dict[int, Dict[str, float]] = {}
        for r in results:
            v = metric(sc, r) if r["scenario"] == sc.key else None
            if v:
                rounds.setdefault(r["round"], {})[r["server"]] = v
        ratios, best = [], []
        for got in rounds.values():
            there = {k: v for k, v in got.items() if k in rivals}
            if mine in got and there:
                top = max(there, key=there.__getitem__)
                ratios.append(got[mine] / there[top])
                best.append(top)
        if ratios:
            out[sc.key] = {"ratio": statistics.median(ratios), "min": min(ratios),
                           "max": max(ratios), "ahead": sum(x > 1 for x in ratios),
                           "rounds": len(ratios),
                           "peer": max(set(best), key=best.count)}
    return out


def lead(scens: List[Scenario], results: List[Dict[str, Any]]) -> Dict[str, Any]:
    """pyws against the fastest Python peer of the same round, per echo
    scenario (pyws's other modes are not its peers)."""
    peers = {s.key for s in ECHO_SERVERS} - {REF} - {s.key for s in pyws_modes(ECHO_SERVERS)}
    return versus(scens, results, "pyws", peers)


def mode_ratios(scens: List[Scenario], results: List[Dict[str, Any]],
                echo_srv: List[Server], bcast_srv: List[Server]) -> Dict[str, Any]:
    """Each pyws mode against picows (echo), and each gevent mode against
    unpatched pyws (its ``against``, echo or broadcast; with the target)."""
    vs_picows = {s.key: versus(scens, results, s.key, {PICOWS})
                 for s in pyws_modes(echo_srv)}
    vs_pyws = {}
    for s in echo_srv + bcast_srv:
        if s.against:
            per = versus(scens, results, s.key, {s.against}, ("echo", "broadcast"))
            for d in per.values():
                d["target_met"] = d["ratio"] >= GEVENT_TARGET
            vs_pyws[s.key] = per
    return {"vs_picows": {k: v for k, v in vs_picows.items() if v},
            "vs_unpatched": {k: v for k, v in vs_pyws.items() if v}}


def asgi_ratios(scens: List[Scenario], results: List[Dict[str, Any]], echo_srv: List[Server],
                summary: Dict[str, Any]) -> List[Dict[str, Any]]:
    """Issue #17's comparisons (ASGI_COMPARISONS) whose two servers both ran:
    per echo scenario the same-round ratio (as ``versus``), with the target
    and whether the median meets it, and each side's idle memory."""
    ran = {s.key for s in echo_srv if s.available}
    idle = [sc for sc in scens if sc.mode == "idle"]
    out = []
    for c in ASGI_COMPARISONS:
        if c.mine not in ran or c.against not in ran:
            continue
        per = versus(scens, results, c.mine, {c.against})
        for key, d in per.items():
            if key in c.targets:
                d["target"] = c.targets[key]
                d["target_met"] = d["ratio"] >= c.targets[key]
        memory = {}
        for sc in idle:
            got = summary.get(sc.key, {})
            memory[sc.key] = {k: got.get(k, {}).get("median") for k in (c.mine, c.against)}
        out.append({"key": c.key, "mine": c.mine, "against": c.against,
                    "targets": dict(c.targets), "scenarios": per,
                    # KiB per idle connection, median over the rounds
                    "idle_kib_per_conn": memory,
                    "targets_met": sum(bool(d.get("target_met")) for d in per.values()),
                    "targets_measured": sum("target" in d for d in per.values())})
    return out


def fmt_num(x: float) -> str:
    if x >= 1e6:
        return f"{x / 1e6:.2f}M"
    if x >= 1e4:
        return f"{x / 1e3:.1f}k"
    if x >= 100:
        return f"{x:,.0f}"
    return f"{x:.1f}"


def fmt_ratio(x: float) -> str:
    return f"{x:.2f}x" if x < 10 else f"{x:.0f}x"


def markdown(cfg: argparse.Namespace, scens: List[Scenario], summary: Dict[str, Any],
             leads: Dict[str, Any], modes: Dict[str, Any], echo_srv: List[Server],
             bcast_srv: List[Server], machine: Dict[str, Any],
             asgi: Optional[List[Dict[str, Any]]] = None) -> str:
    def row(cells: List[str]) -> str:
        return "| " + " | ".join(cells) + " |"

    def ratio_table(title: str, servers: List[Server], rows: List[Scenario],
                    per_server: Dict[str, Any], mark=lambda d: "") -> List[str]:
        """Same-round ratios, one column per server: median (range)."""
        servers = [s for s in servers if s.key in per_server]
        if not servers:
            return []
        out = [f"**{title}**", "", row(["scenario"] + [s.label for s in servers]),
               row(["---"] + ["---:"] * len(servers))]
        for sc in rows:
            cells = []
            for srv in servers:
                d = per_server[srv.key].get(sc.key)
                cells.append(f"{d['ratio']:.2f} ({d['min']:.2f}-{d['max']:.2f}){mark(d)}"
                             if d else "-")
            if any(c != "-" for c in cells):
                out.append(row([sc.label] + cells))
        return out + [""]

    def asgi_table(comparisons: List[Dict[str, Any]]) -> List[str]:
        """Issue #17's comparisons, one column each: the median ratio, the
        target in brackets with its mark (or none), the range over the
        rounds; then each side's idle memory."""
        if not comparisons:
            return []
        label = {s.key: s.label for s in echo_srv}
        out = ["**ASGI and asyncio (issue #17): same-round ratios, mine / other (median "
               "(target) mark [range over the rounds]; ✓ target met by the median, ✗ missed)**",
               "", row(["scenario"] + [f"{label.get(c['mine'], c['mine'])} / "
                                       f"{label.get(c['against'], c['against'])}"
                                       for c in comparisons]),
               row(["---"] + ["---:"] * len(comparisons))]
        for sc in echo:
            cells = []
            for c in comparisons:
                d = c["scenarios"].get(sc.key)
                if d is None:
                    target = c["targets"].get(sc.key)
                    cells.append(f"- ({target:.2f}) not measured" if target else "-")
                    continue
                mark = ""
                if "target" in d:
                    mark = f" ({d['target']:.2f}) {'✓' if d['target_met'] else '✗'}"
                cells.append(f"{d['ratio']:.2f}{mark} [{d['min']:.2f}-{d['max']:.2f}]")
            if any(c != "-" for c in cells):
                out.append(row([sc.label] + cells))
        for sc in idle:
            cells = []
            for c in comparisons:
                m = c["idle_kib_per_conn"].get(sc.key, {})
                a, b = m.get(c["mine"]), m.get(c["against"])
                cells.append(f"{a:.1f} / {b:.1f}" if a is not None and b is not None
                             else "-")
            out.append(row([f"{sc.label}: KiB per connection, mine / other"] + cells))
        met = sum(c["targets_met"] for c in comparisons)
        measured = sum(c["targets_measured"] for c in comparisons)
        if measured:
            out += ["", f"Targets met: {met} of {measured} measured."]
        return out + [""]

    def table(title: str, servers: List[Server], rows: List[Scenario], show) -> List[str]:
        out = [f"**{title}**", "", row(["scenario"] + [s.label for s in servers]),
               row(["---"] + ["---:"] * len(servers))]
        for sc in rows:
            cells = []
            for srv in servers:
                e = summary.get(sc.key, {}).get(srv.key)
                if not srv.available:
                    cells.append("n/a")
                elif not e or "median" not in e:
                    cells.append("error" if e else "-")
                else:  # (!): a round failed, see the notes
                    cells.append(show(sc, e) + (" (!)" if e["errors"] else ""))
            out.append(row([sc.label] + cells))
        return out + [""]

    echo = [s for s in scens if s.mode == "echo"]
    idle = [s for s in scens if s.mode == "idle"]
    bcast = [s for s in scens if s.mode == "broadcast"]
    rounds = f"median of {cfg.rounds} round{'s' if cfg.rounds > 1 else ''}"
    ref = next(s for s in ECHO_SERVERS if s.key == REF).label
    lines = [f"Machine: {machine['cpu']}, {machine['cores']} cores, Linux {machine['kernel']}, "
             f"Python {machine['python']}; server on core {CORE_SERVER}, load generator on core "
             f"{CORE_LOADGEN}" + ("" if cfg.pin else " (not pinned)") +
             f"; {cfg.warmup:g} s warm-up + {cfg.duration:g} s per cell, {rounds}; "
             f"{'binary' if cfg.binary else 'text'} messages.", ""]
    if echo:
        lines += table(f"Echo, messages/s ({rounds}; x = ratio to {ref} in the same round)",
                       echo_srv, echo,
                       lambda sc, e: fmt_num(e["median"]) +
                       (f" ({fmt_ratio(e['ratio'])})" if "ratio" in e else ""))
        if leads:
            label = {s.key: s.label for s in ECHO_SERVERS}
            lines += ["**pyws against the fastest Python peer of each round (pyws / that "
                      "peer: median and range over the rounds)**", "",
                      row(["scenario", "pyws / fastest peer", "range", "pyws ahead",
                           "fastest peer (most rounds)"]),
                      row(["---", "---:", "---:", "---:", "---"])]
            for sc in echo:
                d = leads.get(sc.key)
                if d:
                    lines.append(row([sc.label, f"{d['ratio']:.2f}",
                                      f"{d['min']:.2f}-{d['max']:.2f}",
                                      f"{d['ahead']} of {d['rounds']} rounds",
                                      label.get(d["peer"], d["peer"])]))
            lines.append("")
        lines += ratio_table(
            "pyws's modes against picows of the same round (mode / picows: median "
            "(range) over the rounds)", echo_srv, echo, modes.get("vs_picows", {}))
        lines += ratio_table(
            "pyws's gevent modes against unpatched pyws of the same round (mode / pyws; "
            "broadcast: / pyws Hub; median (range) over the rounds; target >= "
            f"{GEVENT_TARGET:.2f}, *below*: a median under it)",
            echo_srv + bcast_srv, echo + bcast, modes.get("vs_unpatched", {}),
            lambda d: "" if d["target_met"] else " *below*")
        lines += asgi_table(asgi or [])
        lines += table("Echo latency, p50 / p99 (microseconds)", echo_srv, echo,
                       lambda sc, e: f"{fmt_num(e['p50_us'])} / {fmt_num(e['p99_us'])}")
        lines += table("Server CPU per message, user / kernel (microseconds; the server's "
                       "cores over the run / messages per second)", echo_srv, echo,
                       lambda sc, e: f"{e['server_user_us_per_msg']:.2f} / "
                       f"{e['server_sys_us_per_msg']:.2f}")
        multi = [s for s in echo if s.conns > 1]
        if multi:
            lines += table("Fairness: messages of the slowest connection / of the fastest "
                           "(1.00: all served alike)", echo_srv, multi,
                           lambda sc, e: f"{e['fairness']:.2f}")
    if idle:
        lines += table(f"Idle connections: server memory, KiB per connection (x = ratio to {ref})",
                       echo_srv, idle,
                       lambda sc, e: f"{e['median']:.1f}" +
                       (f" ({fmt_ratio(e['ratio'])})" if "ratio" in e else ""))
    if bcast:
        base = next(s for s in BROADCAST_SERVERS if s.key == BROADCAST_BASELINE).label
        lines += table(f"Broadcast, deliveries/s (x = ratio to the {base}; p50 delivery latency)",
                       bcast_srv, bcast,
                       lambda sc, e: f"{fmt_num(e['median'])} ({fmt_ratio(e['ratio'])}), "
                       f"p50 {e['p50_us'] / 1000:.1f} ms" if "ratio" in e
                       else fmt_num(e["median"]))
    notes = [f"- {s.label}: not run: {s.reason}" for s in echo_srv + bcast_srv
             if not s.available]
    others = [r for per in summary.values() for r in per.values() if "others_cpu" in r]
    if others:
        mean = statistics.mean(r["others_cpu"] for r in others)
        worst = max(r["others_cpu"] for r in others)
        notes.append(f"- Other processes on the machine used {mean:.2f} cores on average "
                     f"while cells ran (median per cell; {worst:.2f} at worst)"
                     + (": numbers from a busy machine." if mean > 0.1 else "."))
    for sc in scens:
        for key, e in summary.get(sc.key, {}).items():
            for err in e.get("errors", []):
                notes.append(f"- {sc.label}, {key}: {err}")
    if notes:
        lines += ["Notes:", ""] + sorted(set(notes), key=notes.index) + [""]
    return "\n".join(lines)


def chart(path: Path, cfg: argparse.Namespace, scens: List[Scenario], summary: Dict[str, Any],
          echo_srv: List[Server], bcast_srv: List[Server]) -> Optional[str]:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        return f"no chart: matplotlib is not installed ({exc})"

    echo = [s for s in scens if s.mode == "echo"]
    idle = [s for s in scens if s.mode == "idle"]
    bcast = [s for s in scens if s.mode == "broadcast"]
    colors = plt.get_cmap("tab10" if len(echo_srv) <= 10 else "tab20").colors
    color = {s.key: colors[i % len(colors)] for i, s in enumerate(echo_srv)}
    fig, axes = plt.subplots(2, 2, figsize=(15, 10),
                             gridspec_kw={"width_ratios": [3, 1.3]})
    (ax_tp, ax_idle), (ax_ratio, ax_b) = axes

    def grouped(ax, rows, servers, value, err=True) -> None:
        n = max(len(servers), 1)
        width = 0.8 / n
        for i, srv in enumerate(servers):
            xs, ys, lo, hi = [], [], [], []
            for j, sc in enumerate(rows):
                e = summary.get(sc.key, {}).get(srv.key, {})
                v = value(e)
                if v:
                    xs.append(j - 0.4 + width * (i + 0.5))
                    ys.append(v)
                    lo.append(max(v - e.get("min", v), 0) if err else 0)
                    hi.append(max(e.get("max", v) - v, 0) if err else 0)
            ax.bar(xs, ys, width, label=srv.label, color=color.get(srv.key, colors[i % 10]),
                   yerr=[lo, hi] if err and xs else None, capsize=2, error_kw={"lw": 0.8})
        ax.set_xticks(range(len(rows)))
        ax.set_xticklabels([sc.label.replace(", ", "\n", 1) for sc in rows], fontsize=8)
        ax.grid(axis="y", which="both", alpha=0.3)

    shown = [s for s in echo_srv if s.available]
    if echo:
        grouped(ax_tp, echo, shown, lambda e: e.get("median"))
        ax_tp.set_yscale("log")
        ax_tp.set_ylabel("messages/s (log)")
        ax_tp.set_title("Echo throughput (median; whiskers: min-max over rounds)")
        ax_tp.legend(fontsize=8, ncol=4)
        grouped(ax_ratio, echo, [s for s in shown if s.key != REF],
                lambda e: e.get("ratio"), err=False)
        ax_ratio.set_yscale("log")
        ax_ratio.axhline(1.0, color="black", lw=1)
        ax_ratio.set_ylabel("ratio to the C (wslay) server (log)")
        ax_ratio.set_title("Echo throughput relative to the C reference, same round")
    if idle:
        grouped(ax_idle, idle, shown, lambda e: e.get("median"))
        for bars in ax_idle.containers:
            if hasattr(bars, "patches"):
                ax_idle.bar_label(bars, fmt="%.0f", fontsize=7)
        ax_idle.set_ylabel("KiB per connection")
        ax_idle.set_title("Idle connections: server memory\n(colours as in the echo panel)")
    if bcast:
        bshown = [s for s in bcast_srv if s.available]
        for s in bshown:  # the colours of the same libraries in the echo panels
            twin = (s.key.replace("-hub", "") if s.key.startswith("pyws")
                    else REF if s.key.startswith(REF) else "gevent-websocket")
            color[s.key] = color.get(twin, colors[len(color) % 10])
        grouped(ax_b, bcast, bshown, lambda e: e.get("median"))
        ax_b.set_ylabel("deliveries/s")
        ax_b.set_title("Broadcast to one room")
        ax_b.legend(fontsize=7)
    for ax in (ax_tp, ax_ratio, ax_idle, ax_b):
        if not ax.has_data():
            ax.set_visible(False)
    fig.suptitle(f"pyws benchmark ({cfg.rounds} round{'s' if cfg.rounds > 1 else ''}, "
                 f"{cfg.duration:g} s per cell)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return None


# ---- main -------------------------------------------------------------------

def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true",
                    help="smoke run (~1 min): 1 round, short cells, smaller idle and room")
    ap.add_argument("--rounds", type=int, help="rounds (default 3, quick 1)")
    ap.add_argument("--duration", type=float, help="measured seconds per cell (default 1.5)")
    ap.add_argument("--warmup", type=float, help="warm-up seconds per cell (default 0.5)")
    ap.add_argument("--idle-conns", type=int, help="idle connections (default 2000)")
    ap.add_argument("--room", type=int, help="broadcast room size (default 1000)")
    ap.add_argument("--settle", type=float, default=0.5,
                    help="seconds between the last idle handshake and the RSS reading")
    ap.add_argument("--servers", help="comma-separated subset of server keys")
    ap.add_argument("--baseline", metavar="TREE",
                    help="another pyws work tree (built in place): its pyws runs as "
                         "'<mode>@baseline' beside each pyws mode, for before/after in one run")
    ap.add_argument("--scenarios", help="comma-separated subset of scenario keys")
    ap.add_argument("--binary", action="store_true", help="binary messages instead of text")
    ap.add_argument("--no-pin", dest="pin", action="store_false",
                    help="do not pin server and load generator to cores 0 and 1")
    ap.add_argument("--out", type=Path, default=BENCH / "results", help="results folder")
    ap.add_argument("--list", action="store_true", help="list servers and scenarios, then exit")
    cfg = ap.parse_args(argv)
    quick = cfg.quick
    cfg.rounds = cfg.rounds or (1 if quick else 3)
    cfg.duration = cfg.duration or (0.3 if quick else 1.5)
    cfg.warmup = cfg.warmup if cfg.warmup is not None else (0.1 if quick else 0.5)
    cfg.idle_conns = cfg.idle_conns or (500 if quick else 2000)
    cfg.room = cfg.room or (200 if quick else 1000)

    scens = scenarios(cfg.idle_conns, cfg.room)
    if cfg.baseline:
        add_baseline(cfg.baseline)
    if cfg.list:
        for s in ECHO_SERVERS + BROADCAST_SERVERS:
            print(f"server    {s.key:<26} {s.how}")
        for sc in scens:
            print(f"scenario  {sc.key:<22} {sc.label}")
        return 0
    if cfg.scenarios:
        want = cfg.scenarios.split(",")
        scens = [s for s in scens if s.key in want]
    echo_srv, bcast_srv = list(ECHO_SERVERS), list(BROADCAST_SERVERS)
    if cfg.servers:
        want = set(cfg.servers.split(","))
        # The baselines of the ratios come along: the C server, the broadcast
        # loop, and the unpatched twin of a gevent mode.
        want |= {REF, BROADCAST_BASELINE} | {s.against for s in echo_srv + bcast_srv
                                            if s.key in want and s.against}
        # ... and what a server named is held against for issue #17's targets.
        want |= {c.against for c in ASGI_COMPARISONS if c.mine in want and c.targets}
        echo_srv = [s for s in echo_srv if s.key in want]
        bcast_srv = [s for s in bcast_srv if s.key in want]

    if cfg.pin and (shutil.which("taskset") is None or (os.cpu_count() or 1) < 2):
        print("note: taskset missing or one core only: not pinning", file=sys.stderr)
        cfg.pin = False
    limits = raise_nofile(max(cfg.idle_conns, cfg.room) + 256)
    if not limits["enough"]:
        print(f"warning: open-file limit {limits['soft']} is below what "
              f"{cfg.idle_conns} connections need", file=sys.stderr)
    build_errors = build_c()
    if "loadgen" in build_errors:
        print(f"error: the load generator did not build: {build_errors['loadgen']}",
              file=sys.stderr)
        return 1
    check_available(ECHO_SERVERS + BROADCAST_SERVERS, build_errors)
    for s in ECHO_SERVERS + BROADCAST_SERVERS:
        if not s.available:
            print(f"note: {s.key}: {s.reason}", file=sys.stderr)
    runnable_echo = [s for s in echo_srv if s.available]
    runnable_bcast = [s for s in bcast_srv if s.available]

    machine = machine_info()
    machine["open_files"] = limits
    cfg.out.mkdir(parents=True, exist_ok=True)
    logdir = cfg.out / "logs"
    logdir.mkdir(exist_ok=True)
    for old in logdir.glob("*.log"):
        old.unlink()

    started = time.monotonic()
    stamp = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    results = run_all(cfg, scens, runnable_echo, runnable_bcast, logdir)
    elapsed = time.monotonic() - started
    machine["loadavg_end"] = os.getloadavg()

    summary = summarize(scens, results)
    leads = lead(scens, results)
    modes = mode_ratios(scens, results, echo_srv, bcast_srv)
    asgi = asgi_ratios(scens, results, echo_srv, summary)
    table = markdown(cfg, scens, summary, leads, modes, echo_srv, bcast_srv, machine, asgi)
    report = {
        "suite": "pyws bench", "format": 1, "started": stamp, "elapsed_s": round(elapsed, 1),
        "machine": machine,
        "config": {"rounds": cfg.rounds, "duration_s": cfg.duration, "warmup_s": cfg.warmup,
                   "pinned": cfg.pin, "server_core": CORE_SERVER, "loadgen_core": CORE_LOADGEN,
                   "opcode": "binary" if cfg.binary else "text", "quick": quick,
                   "max_message_size": MAX_MESSAGE_SIZE, "idle_settle_s": cfg.settle},
        "servers": {s.key: {k: v for k, v in asdict(s).items() if k not in ("key", "script")}
                    for s in ECHO_SERVERS + BROADCAST_SERVERS},
        "scenarios": [asdict(s) for s in scens],
        "summary": summary,
        "lead": leads,
        # Every pyws mode / picows, and every gevent mode / unpatched pyws
        # (per scenario, round by round; "target" is what the latter aim at).
        "modes": {"target": GEVENT_TARGET, **modes},
        # Issue #17: uvicorn + pyws against uvicorn's implementations,
        # pyws.asyncio against picows (per scenario, round by round, with
        # the targets), and each side's idle memory.
        "asgi": asgi,
        "cells": results,
    }
    (cfg.out / "results.json").write_text(json.dumps(report, indent=1) + "\n")
    (cfg.out / "table.md").write_text(table + "\n")
    problem = chart(cfg.out / "chart.png", cfg, scens, summary, echo_srv, bcast_srv)
    print(table)
    print(f"results: {cfg.out / 'results.json'}, {cfg.out / 'table.md'}"
          + (f"; {problem}" if problem else f", {cfg.out / 'chart.png'}"))
    print(f"took {elapsed:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
