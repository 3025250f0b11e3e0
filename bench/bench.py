"""hookhub's benchmark: one run, one machine, hookhub beside the receivers a merchant would write by hand.

Every request is a different, correctly signed call. Scenarios:

1. ``callbacks``: signed Monri callbacks, driven by wrk at saturation, to the bare hand-written
   receiver (``baseline.py``: checks the digest and answers), the durable one (``durable.py``: also
   commits one row per call before answering), each under gunicorn's sync and gthread workers
   (the better figure is kept), and hookhub as ``hookhub serve`` ships it. Both ratios are printed.
   Then hookhub again at a fixed rate of half the durable receiver's maximum (``paced.py``),
   latency counted from each request's scheduled send time. Afterwards the store is checked:
   exactly one event per distinct callback answered 2xx, or the run fails.
2. ``moncash``: buyers returning from MonCash (``GET /return/moncash?transactionId=...``), each
   verified against a fast local fake of MonCash's API (``fake_moncash.py``); how many OAuth token
   requests that took per 1000 verifications and per worker.
3. ``memory``: resident memory of every hookhub worker after the loads.
4. ``--seed ROWS``: the same with hookhub's store already holding ROWS paid callbacks with their
   transactions, events, movements and deliveries (``grow.py``), and how long the operators'
   listings take on it afterwards.

Every server records on SQLite (WAL, ``synchronous=FULL``), or on PostgreSQL with ``--database``.
Run it with ``bench/run`` (see the README); ``bench/run --help`` lists the settings.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import platform
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
MERCHANT_KEY = "bench-monri-merchant-key-0123456789"
PUBLIC_URL = "http://127.0.0.1"
MONCASH_TOKEN_LIFETIME = 59  # seconds, as fake_moncash.py (and MonCash) issue them
TARGET_RATIO = 1.0
TARGET_P99_MS = 25.0
TARGET_RSS_MB = 80.0
TARGET_LISTING_MS = 100.0


@dataclasses.dataclass
class Load:
    """What wrk measured for one scenario."""

    requests: int
    seconds: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    status_2xx: int
    status_3xx: int
    other: int  # 4xx, 5xx and socket errors
    repeats: int  # times a wrk thread ran out of distinct requests and started again

    @property
    def rps(self) -> float:
        return self.requests / self.seconds


class Server:
    """A server (a gunicorn master and its workers) started by ``command`` on a free loopback port."""

    def __init__(self, name: str, command: list[str], env: dict[str, str], logs: Path):
        self.name = name
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = logs / f"{name}.log"
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen([part.replace("{port}", str(self.port)) for part in command],
                                            env={**os.environ, **env}, cwd=HERE, stdout=log,
                                            stderr=subprocess.STDOUT, start_new_session=True)

    @classmethod
    def gunicorn(cls, name: str, app: str, env: dict[str, str], gunicorn_args: list[str], logs: Path) -> Server:
        return cls(name, [str(Path(sys.executable).parent / "gunicorn"), "--chdir", str(HERE),
                          "--bind", "127.0.0.1:{port}", *gunicorn_args, app], env, logs)

    def wait_ready(self, path: str, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"{self.name} exited at start; see {self.log_path}:\n{self.log_path.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(self.url + path, timeout=2):
                    return
            except urllib.error.HTTPError:
                return  # it answers
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise SystemExit(f"{self.name} did not answer {path} within {timeout}s; see {self.log_path}")

    def worker_pids(self) -> list[int]:
        """The gunicorn workers: the master's children (``hookhub serve`` execs gunicorn itself)."""
        return sorted(pid for pid in _children(self.process.pid))

    def stop(self) -> None:
        """Stop the master and its workers (the whole process group, even if the master is gone)."""
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        try:
            self.process.wait(20)
        except subprocess.TimeoutExpired:
            pass
        try:
            os.killpg(self.process.pid, signal.SIGKILL)  # workers a dead master left behind
        except ProcessLookupError:
            pass
        self.process.wait()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(entry.name))
    return found


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


# -- requests -------------------------------------------------------------------------------------

def write_callbacks(path: Path, count: int, prefix: str) -> None:
    """``count`` signed Monri callbacks, each for its own order, as Monri sends them."""
    with open(path, "w") as out:
        for i in range(count):
            body = json.dumps({
                "id": 1_000_000 + i, "acquirer": "xml-sim", "order_number": f"{prefix}{i}",
                "order_info": "Benchmark order", "amount": 100 + i % 9_900, "currency": "EUR",
                "status": "approved", "response_code": "0000", "approval_code": "629762",
                "transaction_type": "purchase", "masked_pan": "434179-xxx-xxx-0044",
                "created_at": "2026-11-21T14:05:11.190+02:00",
            }, separators=(",", ":"))
            digest = hashlib.sha512(MERCHANT_KEY.encode() + body.encode()).hexdigest()
            out.write(f"POST\t/hooks/monri\tWP3-callback {digest}\t{body}\n")


def write_returns(path: Path, count: int, first: int) -> None:
    """``count`` buyers' returns from MonCash, each naming its own transaction."""
    with open(path, "w") as out:
        for i in range(first, first + count):
            out.write(f"GET\t/return/moncash?transactionId={i}\t\t\n")


def run_wrk(url: str, requests_file: Path, args: argparse.Namespace, seconds: float) -> Load:
    command = ["wrk", "--latency", "-t", str(args.wrk_threads), "-c", str(args.connections), "-d", f"{max(1, round(seconds))}s",
               "--timeout", "10s", "-s", str(HERE / "load.lua"), url, "--", str(requests_file), str(args.wrk_threads)]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"wrk failed ({done.returncode}):\n{done.stdout}{done.stderr}")
    output = done.stdout
    line = next((ln for ln in output.splitlines() if ln.startswith("WRK-RESULT ")), None)
    if line is None:
        raise SystemExit(f"wrk printed no result:\n{output}")
    r = json.loads(line[len("WRK-RESULT "):])
    socket_errors = r["connect_errors"] + r["read_errors"] + r["write_errors"] + r["timeouts"]
    return Load(requests=r["requests"], seconds=r["duration_us"] / 1e6, p50_ms=r["p50_us"] / 1000,
                p90_ms=r["p90_us"] / 1000, p99_ms=r["p99_us"] / 1000, max_ms=r["max_us"] / 1000,
                status_2xx=r["status_2xx"], status_3xx=r["status_3xx"], other=r["status_other"] + socket_errors,
                repeats=r["repeats"])


def requests_for(seconds: float, args: argparse.Namespace) -> int:
    """Enough distinct requests that wrk never runs out at up to ``--max-rps``."""
    return int(seconds * args.max_rps) + 1000


# -- scenarios ------------------------------------------------------------------------------------

RECEIVERS = (("bare", "baseline:app"), ("durable", "durable:app"))
WORKER_CLASSES = ("sync", "gthread")


def receiver_args(args: argparse.Namespace, worker_class: str) -> list[str]:
    settings = ["--workers", str(args.workers), "--worker-class", worker_class, "--log-level", "warning"]
    if worker_class == "gthread":
        settings += ["--threads", str(args.threads)]
    return settings


def measure(server: Server, requests_file: Path, warm_file: Path, args: argparse.Namespace,
            profile_as: str | None = None) -> tuple[Load, Load]:
    """Warm ``server`` up, then measure it: (warm-up load, measured load).

    With ``--profile``, py-spy samples every worker during the measured load (``profile_as`` names
    the files: a flame graph and the collapsed stacks per worker).
    """
    warm = run_wrk(server.url, warm_file, args, args.warmup)
    spies = []
    if args.profile and profile_as:
        args.profile.mkdir(parents=True, exist_ok=True)
        for pid in server.worker_pids():
            for fmt, suffix in (("flamegraph", "svg"), ("raw", "txt")):
                out = args.profile / f"{profile_as}-{pid}.{suffix}"
                spies.append(subprocess.Popen(
                    [_py_spy(), "record", "--nonblocking", "--idle", "--threads", "--format", fmt, "--output", str(out),
                     "--duration", str(max(1, round(args.duration))), "--pid", str(pid)],
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    measured = run_wrk(server.url, requests_file, args, args.duration)
    for spy in spies:
        spy.wait(60)
    return warm, measured


def run_paced(url: str, requests_file: Path, rate: float, seconds: float) -> dict:
    done = subprocess.run([sys.executable, str(HERE / "paced.py"), url, str(requests_file), f"{rate:.1f}",
                           f"{seconds:g}"], capture_output=True, text=True)
    line = next((ln for ln in done.stdout.splitlines() if ln.startswith("PACED-RESULT ")), None)
    if done.returncode != 0 or line is None:
        raise SystemExit(f"paced load failed ({done.returncode}):\n{done.stdout}{done.stderr}")
    return json.loads(line[len("PACED-RESULT "):])


def _py_spy() -> str:
    found = shutil.which("py-spy", path=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    if found is None:
        raise SystemExit("--profile needs py-spy: .venv/bin/pip install py-spy")
    return found


class Database:
    """Where the servers keep what they record: SQLite files in the run's folder, or fresh databases
    on a PostgreSQL server (``--database``), dropped afterwards."""

    def __init__(self, url: str | None, work: Path):
        from sqlalchemy import create_engine

        self.url, self.work, self.made = url, work, []
        self._create_engine = create_engine
        self.postgresql = bool(url and url.startswith("postgresql"))
        if url and not self.postgresql:
            raise SystemExit("--database takes a postgresql:// URL (SQLite is the default)")

    def for_server(self, name: str) -> str:
        """A new, empty database for server ``name``: a SQLAlchemy URL."""
        if not self.postgresql:
            return f"sqlite:///{self.work / (name + '.sqlite')}"
        from sqlalchemy.engine import make_url

        base = make_url(self.url).set(drivername="postgresql+psycopg")
        database = f"bench_{name}_{os.getpid()}".replace("-", "_")
        with self._create_engine(base.set(database="postgres"), isolation_level="AUTOCOMMIT").connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{database}"')
            conn.exec_driver_sql(f'CREATE DATABASE "{database}"')
        self.made.append(base.set(database=database))
        return self.made[-1].render_as_string(hide_password=False)

    def receiver_location(self, url: str) -> str:
        """What ``durable.py`` takes: a file path, or a plain postgresql:// URL."""
        return url[len("sqlite:///"):] if url.startswith("sqlite:///") else url.replace("postgresql+psycopg", "postgresql")

    def count(self, url: str, sql: str) -> int:
        from sqlalchemy import text

        engine = self._create_engine(url)
        try:
            with engine.connect() as conn:
                return conn.execute(text(sql)).scalar_one()
        finally:
            engine.dispose()

    def drop_all(self) -> None:
        for made in self.made:
            try:
                with self._create_engine(made.set(database="postgres"), isolation_level="AUTOCOMMIT").connect() as conn:
                    conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{made.database}" WITH (FORCE)')
            except Exception as exc:  # a database left behind is named; the figures still stand
                print(f"could not drop {made.database}: {exc}", file=sys.stderr)


def wait_until_done(database: Database, url: str, timeout: float) -> float | None:
    """Seconds until every accepted call is reconciled and no delivery is pending; None after ``timeout``."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if (database.count(url, "SELECT count(*) FROM inbound_calls WHERE accepted_state IS NOT NULL") == 0
                and database.count(url, "SELECT count(*) FROM deliveries WHERE status = 'pending'") == 0):
            return time.monotonic() - start
        time.sleep(0.2)
    return None


def fetch_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read())


def machine() -> dict[str, str]:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor() or "unknown")
    memory_kb = next(int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
                     if line.startswith("MemTotal:"))
    wrk_version = subprocess.run(["wrk", "--version"], capture_output=True, text=True).stdout.split("\n")[0]
    return {"cpu": f"{cpu}, {os.cpu_count()} cores", "memory": f"{memory_kb / 1024 / 1024:.1f} GiB",
            "kernel": platform.release(), "python": platform.python_version(),
            "sqlite": sqlite3.sqlite_version, "wrk": wrk_version.strip()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench/run", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--duration", type=float, default=20, help="seconds of measured load per scenario")
    parser.add_argument("--warmup", type=float, default=3, help="seconds of load before each measurement")
    parser.add_argument("--connections", type=int, default=8, help="wrk's open connections")
    parser.add_argument("--wrk-threads", type=int, default=2, help="wrk's threads")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers of every server")
    parser.add_argument("--threads", type=int, default=4, help="threads per gthread worker of the receivers")
    parser.add_argument("--database", help="a postgresql:// URL: every server records there, in a fresh "
                                           "database of its own (default: SQLite files)")
    parser.add_argument("--seed", type=int, default=0, metavar="ROWS",
                        help="give hookhub a store that already holds ROWS paid callbacks, each with its "
                             "transaction, event, movement and delivery (bench/grow.py), and time the "
                             "operators' listings on it")
    parser.add_argument("--max-rps", type=int, default=15_000, help="requests to prepare per second of load")
    parser.add_argument("--no-handler", action="store_true",
                        help="run hookhub without a handler, so that no deliveries are made")
    parser.add_argument("--keep", action="store_true", help="keep the run's folder (stores, logs, requests)")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    parser.add_argument("--profile", type=Path, metavar="DIR",
                        help="sample hookhub's workers with py-spy during the measured loads; write to DIR")
    args = parser.parse_args(argv)
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: on Debian or Ubuntu, apt-get install wrk (bench/run does this)")

    work = Path(tempfile.mkdtemp(prefix="hookhub-bench-"))
    database = Database(args.database, work)
    servers: list[Server] = []
    try:
        return _run(args, work, database, servers)
    finally:
        for server in servers:
            server.stop()
        database.drop_all()
        if args.keep:
            print(f"\nrun folder kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


def _run(args: argparse.Namespace, work: Path, database: Database, servers: list[Server]) -> int:
    info = machine()
    print("machine: " + "; ".join(f"{k} {v}" for k, v in info.items()))
    print(f"load: wrk -t{args.wrk_threads} -c{args.connections}, {args.warmup:g}s warm-up + {args.duration:g}s "
          f"measured per server; {args.workers} gunicorn workers each; store: "
          f"{'PostgreSQL' if database.postgresql else 'SQLite (WAL, synchronous=FULL)'}\n", flush=True)
    warm_n, measured_n = requests_for(args.warmup, args), requests_for(args.duration, args)
    monri_env = {"HOOKHUB_MONRI_MERCHANT_KEY": MERCHANT_KEY}

    # 1. The receivers a merchant writes by hand, each under both worker classes; the better figure counts.
    receivers: dict[str, dict[str, Load]] = {}
    for name, app in RECEIVERS:
        receivers[name] = {}
        for worker_class in WORKER_CLASSES:
            label = f"{name}-{worker_class}"
            for phase, count in (("warm", warm_n), ("measured", measured_n)):
                write_callbacks(work / f"{label}-{phase}.requests", count, f"{label}-{phase}-")
            env = dict(monri_env)
            if name == "durable":
                env["DURABLE_DATABASE"] = database.receiver_location(database.for_server(label))
            server = Server.gunicorn(label, app, env, receiver_args(args, worker_class), work)
            servers.append(server)
            server.wait_ready("/")
            _, receivers[name][worker_class] = measure(server, work / f"{label}-measured.requests",
                                                       work / f"{label}-warm.requests", args)
            server.stop()
    best = {name: max(loads.values(), key=lambda load: load.rps) for name, loads in receivers.items()}

    # 2. hookhub as `hookhub serve` ships it, at saturation and then at half the durable receiver's rate.
    fake = Server.gunicorn("fake-moncash", "fake_moncash:app", {}, [
        "--workers", "1", "--worker-class", "gthread", "--threads", "16", "--log-level", "warning"], work)
    servers.append(fake)
    fake.wait_ready("/_stats")
    store_url = database.for_server("hookhub")
    seeded = None
    if args.seed:
        import grow

        print(f"seeding hookhub's store with {args.seed} paid callbacks...", flush=True)
        seeded = {"rows": args.seed, "seconds": grow.seed(store_url, args.seed, "" if args.no_handler else "bench_handler")}
    hookhub_env = {
        **monri_env,
        "HOOKHUB_DATABASE_URL": store_url, "HOOKHUB_INSTANCE_PATH": str(work / "instance"),
        "HOOKHUB_SECRET_KEY": "bench-secret-key-0123456789abcdef", "HOOKHUB_PUBLIC_URL": PUBLIC_URL,
        "HOOKHUB_MONRI_AUTHENTICITY_TOKEN": "bench-monri-authenticity-token",
        "HOOKHUB_MONCASH_CLIENT_ID": "bench-client", "HOOKHUB_MONCASH_CLIENT_SECRET": "bench-secret",
        "HOOKHUB_MONCASH_BASE_URL": f"{fake.url}/Api", "HOOKHUB_MONCASH_GATEWAY_URL": f"{fake.url}/Moncash-middleware",
        "HOOKHUB_HANDLERS": "" if args.no_handler else "bench_handler", "PYTHONPATH": str(HERE),
    }
    hookhub = Server("hookhub", [str(Path(sys.executable).parent / "hookhub"), "serve", "--bind", "127.0.0.1:{port}",
                                 "--workers", str(args.workers)], hookhub_env, work)
    servers.append(hookhub)
    hookhub.wait_ready("/healthz")
    for phase, count in (("warm", warm_n), ("measured", measured_n)):
        write_callbacks(work / f"hookhub-{phase}.requests", count, f"hookhub-{phase}-")
    hub_warm, hub = measure(hookhub, work / "hookhub-measured.requests", work / "hookhub-warm.requests", args,
                            profile_as="callbacks")
    backlog = database.count(store_url, "SELECT count(*) FROM inbound_calls WHERE accepted_state IS NOT NULL")
    pending_after_load = database.count(store_url, "SELECT count(*) FROM deliveries WHERE status = 'pending'")
    drained = wait_until_done(database, store_url, timeout=300)
    rate = best["durable"].rps / 2
    write_callbacks(work / "hookhub-paced.requests", int(rate * args.duration) + 10, "hookhub-paced-")
    paced = run_paced(hookhub.url, work / "hookhub-paced.requests", rate, args.duration)
    wait_until_done(database, store_url, timeout=300)
    # And at half hookhub's own maximum: its latency when the load is one it keeps up with.
    own_rate = hub.rps / 2
    write_callbacks(work / "hookhub-paced-own.requests", int(own_rate * args.duration) + 10, "hookhub-paced-own-")
    paced_own = run_paced(hookhub.url, work / "hookhub-paced-own.requests", own_rate, args.duration)
    wait_until_done(database, store_url, timeout=300)
    accepted = (hub_warm.status_2xx + hub.status_2xx + paced["statuses"].get("2xx", 0)
                + paced_own["statuses"].get("2xx", 0))
    events = database.count(store_url, "SELECT count(*) FROM events WHERE provider = 'monri' "
                                       "AND order_id NOT LIKE 'grown-%'")  # not what --seed wrote

    # 3. Buyers returning from MonCash, each verified with the provider's API.
    write_returns(work / "returns-warm.requests", warm_n, 10**9)
    write_returns(work / "returns.requests", measured_n, 2 * 10**9)
    returns_warm, returns = measure(hookhub, work / "returns.requests", work / "returns-warm.requests", args,
                                    profile_as="returns")
    stats = fetch_json(f"{fake.url}/_stats")
    redirected = returns_warm.status_3xx + returns.status_3xx
    hookhub_rss = [rss_mb(pid) for pid in hookhub.worker_pids()]
    return_events = database.count(store_url, "SELECT count(*) FROM events WHERE provider = 'moncash'")

    if seeded is not None:
        import grow

        seeded["listings_ms"] = grow.listings(store_url)
    figures = report(args, info, receivers, best, hub, paced, paced_own, accepted, events, backlog, pending_after_load, drained,
                     returns, stats, redirected, return_events, hookhub_rss, seeded)
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    if not (figures["callbacks"]["consistent"] and figures["moncash_returns"]["consistent"]):
        print("\nSTORE CHECK FAILED: an answered call is missing its event, or one has two", file=sys.stderr)
        return 1
    return 0


def consistent(events: int, answered: int, args: argparse.Namespace) -> bool:
    """Every distinct request answered must have made its event; the requests still in flight
    when a load stopped (at most one per connection and load) may have made one more."""
    return answered <= events <= answered + 3 * args.connections


def _check(events: int, answered: int, args: argparse.Namespace) -> str:
    return "as it must: the rest were in flight when a load stopped" if consistent(events, answered, args) else "WRONG"


def _row(name: str, load: Load) -> str:
    return (f"   {name:18} {load.rps:9.0f} {load.p50_ms:8.2f} {load.p99_ms:8.2f} {load.max_ms:8.1f} "
            f"{load.requests - load.status_2xx:8d}")


def report(args, info, receivers: dict[str, dict[str, Load]], best: dict[str, Load], hub: Load, paced: dict,
           paced_own: dict, accepted: int, events: int, backlog: int, pending_after_load: int, drained: float | None,
           returns: Load, stats: dict, redirected: int, return_events: int, hookhub_rss: list[float],
           seeded: dict | None = None) -> dict:
    ratios = {name: hub.rps / load.rps if load.rps else float("nan") for name, load in best.items()}
    print("1. signed Monri callbacks, saturated (wrk)")
    print(f"   {'':18} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} {'non-2xx':>8}")
    for name, loads in receivers.items():
        for worker_class, load in loads.items():
            print(_row(f"{name} ({worker_class})", load) + ("  <- kept" if load is best[name] else ""))
    print(_row("hookhub (serve)", hub))
    print(f"   hookhub / durable receiver: {ratios['durable']:.2f} (target >= {TARGET_RATIO:g}); "
          f"hookhub / bare receiver: {ratios['bare']:.2f}")
    print(f"\n2. at a fixed rate of {paced['rate']:.0f}/s (half the durable receiver's), latency from each "
          f"request's scheduled send time")
    print(f"   hookhub: p50 {paced['p50_ms']:.2f} ms, p99 {paced['p99_ms']:.2f} ms (target < {TARGET_P99_MS:g}), "
          f"max {paced['max_ms']:.1f} ms; {paced['sent']} sent, answers {paced['statuses']}, "
          f"{paced['errors']} errors, {paced['connections']} connections")
    print(f"   at {paced_own['rate']:.0f}/s (half hookhub's own maximum): p50 {paced_own['p50_ms']:.2f} ms, "
          f"p99 {paced_own['p99_ms']:.2f} ms, max {paced_own['max_ms']:.1f} ms; answers {paced_own['statuses']}")
    print(f"\n   store: {events} Monri events for {accepted} distinct callbacks answered 2xx "
          f"({_check(events, accepted, args)}); when the saturated load stopped, {backlog} answered calls "
          f"awaited their reconciliation and {pending_after_load} deliveries were pending: "
          + (f"all done {drained:.1f}s later" if drained is not None else "NOT done after 300s"))
    for name, load in (("hookhub", hub), ("moncash", returns)):
        if load.repeats:
            print(f"   warning: wrk ran out of distinct {name} requests {load.repeats} times; raise --max-rps")

    tokens = stats["token_requests"]
    per_thousand = 1000 * tokens / stats["retrievals"] if stats["retrievals"] else float("nan")
    print("\n3. MonCash returns, each verified with RetrieveTransactionPayment")
    print(f"   {'':18} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} {'not 303':>8}")
    print(f"   {'hookhub':18} {returns.rps:9.0f} {returns.p50_ms:8.2f} {returns.p99_ms:8.2f} {returns.max_ms:8.1f} "
          f"{returns.requests - returns.status_3xx:8d}")
    print(f"   {stats['retrievals']} verifications (warm-up included), {stats['refused']} refused for the token; "
          f"{tokens} token requests from {args.workers} workers = {per_thousand:.2f} per 1000 verifications")
    print(f"   store: {return_events} MonCash events for {redirected} buyers sent on "
          f"({_check(return_events, redirected, args)})")

    print("\n4. resident memory per hookhub worker after the loads (MB)")
    print(f"   {', '.join(f'{m:.1f}' for m in hookhub_rss)} (target < {TARGET_RSS_MB:g})")
    if seeded is not None:
        print(f"\n5. a store that already held {seeded['rows']} paid callbacks (seeded in {seeded['seconds']:.0f}s); "
              f"after the loads, best of three:")
        print("   " + "; ".join(f"{name} {ms:.1f} ms" for name, ms in seeded["listings_ms"].items())
              + f" (target < {TARGET_LISTING_MS:g} ms each)")
    return {
        "machine": info, "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "callbacks": {"receivers": {name: {wc: dataclasses.asdict(load) | {"rps": load.rps} for wc, load in loads.items()}
                                    for name, loads in receivers.items()},
                      "hookhub": dataclasses.asdict(hub) | {"rps": hub.rps}, "ratios": ratios,
                      "paced": paced, "paced_own": paced_own, "accepted": accepted, "monri_events": events,
                      "consistent": consistent(events, accepted, args), "backlog_after_load": backlog,
                      "pending_deliveries_after_load": pending_after_load, "drained_seconds": drained},
        "moncash_returns": dataclasses.asdict(returns) | {
            "rps": returns.rps, "verifications": stats["retrievals"], "token_requests": tokens,
            "token_requests_per_1000": per_thousand, "refused": stats["refused"], "redirected": redirected, "events": return_events,
            "consistent": consistent(return_events, redirected, args)},
        "rss_mb": {"hookhub": hookhub_rss}, "seeded": seeded,
        "token_lifetime_seconds": MONCASH_TOKEN_LIFETIME,
    }


if __name__ == "__main__":
    sys.exit(main())
