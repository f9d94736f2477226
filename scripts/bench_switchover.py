#!/usr/bin/env python3
"""scripts/bench-switchover (see its header): clusters, writers, master changes and the report.

Standard library only; psql does the PostgreSQL side. Every wait is bounded (BENCH_TIMEOUT) and every
process it starts is stopped at exit."""

import argparse
import itertools
import json
import os
import select
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

RUNS = int(os.environ.get("RUNS", "10"))
REPLICATIONS = os.environ.get("REPLICATIONS", "sync async").split()
WRITERS = os.environ.get("WRITERS", "newconn persistent").split()
METHODS = os.environ.get("METHODS", "switchover failkeeper").split()
TIMEOUT = float(os.environ.get("BENCH_TIMEOUT", "180"))
BENCH_OUT = os.environ.get("BENCH_OUT", "")
BENCH_LOGS = os.environ.get("BENCH_LOGS", "")
LOG_LEVEL = os.environ.get("LOG_LEVEL", "info")
SU, REPL = "stolon", "repluser"
WRITE_LIMIT = 2.0  # seconds: bound of one write (an unknown outcome counts as failed, never as acknowledged)
IDS = itertools.count(1)


def log(msg):
    print(f"bench-switchover: {time.strftime('%H:%M:%S')} {msg}", file=sys.stderr, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Bench:
    def __init__(self, bin_dir):
        self.bin = bin_dir
        self.pg_bin = "/usr/lib/postgresql/15/bin"
        self.psql = os.path.join(self.pg_bin, "psql")
        self.dir = tempfile.mkdtemp(prefix="stolon-bench-switchover.")
        os.chmod(self.dir, 0o755)
        self.procs = []
        self.results = []
        for name in ("su-password", "repl-password"):
            path = os.path.join(self.dir, name)
            with open(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600), "w") as f:
                f.write(os.urandom(16).hex())
        self.password = open(os.path.join(self.dir, "su-password")).read()
        self.env = dict(os.environ, PGPASSWORD=self.password, PGCONNECT_TIMEOUT="1")
        port, peer = free_port(), free_port()
        self.endpoint = f"http://127.0.0.1:{port}"
        self.start("etcd", ["etcd", "--name", "bench", "--data-dir", os.path.join(self.dir, "etcd"),
                            "--listen-client-urls", self.endpoint, "--advertise-client-urls", self.endpoint,
                            "--listen-peer-urls", f"http://127.0.0.1:{peer}",
                            "--initial-advertise-peer-urls", f"http://127.0.0.1:{peer}",
                            "--initial-cluster", f"bench=http://127.0.0.1:{peer}", "--log-level", "warn"], self.dir)
        self.cluster_seq = 0

    def start(self, name, argv, where):
        logf = open(os.path.join(where, f"{name}.log"), "ab")
        p = subprocess.Popen(argv, stdout=logf, stderr=subprocess.STDOUT, start_new_session=True)
        self.procs.append(p)
        return p

    def stop_cluster(self):
        """Stops the current cluster's processes (etcd stays)."""
        keep, self.procs = self.procs[:1], self.procs[1:]
        self.stop_all()
        self.procs = keep

    def stop_all(self):
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 20
        for p in self.procs:
            try:
                p.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.kill()
        self.procs = []
        # A keeper stopped with SIGTERM stops its postgres; anything left behind is stopped here.
        for root, dirs, files in os.walk(self.dir):
            if "postmaster.pid" in files:
                try:
                    pid = int(open(os.path.join(root, "postmaster.pid")).readline())
                    os.kill(pid, signal.SIGQUIT)
                except (ValueError, OSError):
                    pass

    # --- one cluster -------------------------------------------------------------------------------------
    def new_cluster(self, sync):
        self.cluster_seq += 1
        self.name = f"bench{self.cluster_seq}-{'sync' if sync else 'async'}"
        self.cdir = os.path.join(self.dir, self.name)
        os.makedirs(self.cdir)
        os.chmod(self.cdir, 0o755)
        self.store = ["--cluster-name", self.name, "--store-backend", "etcdv3", "--store-endpoints", self.endpoint]
        daemon = ["--log-color=false", "--log-level", LOG_LEVEL]
        spec = {"initMode": "new", "pgParameters": {"shared_buffers": "16MB", "max_connections": "50"}}
        if sync:
            spec.update(synchronousReplication=True, minSynchronousStandbys=1, maxSynchronousStandbys=1)
        spec_path = os.path.join(self.cdir, "spec.json")
        json.dump(spec, open(spec_path, "w"))
        self.sync = sync
        for i in range(3):
            port = free_port()
            self.start(f"keeper{i}", [os.path.join(self.bin, "stolon-keeper"), *self.store, "--uid", f"keeper{i}",
                                      "--data-dir", os.path.join(self.cdir, f"keeper{i}"),
                                      "--pg-listen-address", "127.0.0.1", "--pg-port", str(port),
                                      "--pg-bin-path", self.pg_bin, "--pg-os-user", "postgres",
                                      "--pg-su-username", SU, "--pg-su-passwordfile",
                                      os.path.join(self.dir, "su-password"), "--pg-repl-username", REPL,
                                      "--pg-repl-passwordfile", os.path.join(self.dir, "repl-password"), *daemon],
                       self.cdir)
        self.start("sentinel0", [os.path.join(self.bin, "stolon-sentinel"), *self.store,
                                 "--initial-cluster-spec", spec_path, *daemon], self.cdir)
        self.proxy_port = free_port()
        self.start("proxy", [os.path.join(self.bin, "stolon-proxy"), *self.store, "--listen-address", "127.0.0.1",
                             "--port", str(self.proxy_port), *daemon], self.cdir)
        self.dsn = f"host=127.0.0.1 port={self.proxy_port} user={SU} dbname=postgres connect_timeout=1"
        log(f"cluster {self.name} started in {self.cdir}")

    def stolonctl(self, *args, timeout=60):
        return subprocess.run([os.path.join(self.bin, "stolonctl"), *self.store, *args], capture_output=True,
                              text=True, timeout=timeout)

    def cd(self):
        r = self.stolonctl("clusterdata", "read")
        return json.loads(r.stdout) if r.returncode == 0 and r.stdout.strip() not in ("", "null") else None

    def healthy(self):
        """The master, two converged standbys on its timeline, (sync) a confirmed synchronous standby, the proxy routed, no
        operation pending, and a write through the proxy commits. Returns the master keeper or None."""
        cd = self.cd()
        if not cd or cd.get("cluster", {}).get("status", {}).get("phase") != "normal":
            return None
        dbs = cd.get("dbs") or {}
        master = cd["cluster"]["status"].get("master", "")
        ready = [d for d in dbs.values() if d["status"].get("healthy")
                 and d["status"].get("currentGeneration") == d.get("generation")]
        if master not in dbs or len(ready) != 3 or len(dbs) != 3:
            return None
        # A standby that has not reached the master's timeline yet cannot be a switchover candidate.
        if any(d["status"].get("timelineID") != dbs[master]["status"].get("timelineID") for d in ready):
            return None
        if cd.get("proxy", {}).get("spec", {}).get("masterDbUid") != master:
            return None
        if (cd.get("operations") or {}).get("switchover"):
            return None
        if self.sync and not dbs[master]["status"].get("synchronousStandbys"):
            return None
        r = subprocess.run([self.psql, self.dsn, "-X", "-q", "-c",
                            "create table if not exists bench_switchover(id bigint primary key)"],
                           env=self.env, capture_output=True, timeout=10)
        return dbs[master]["spec"]["keeperUID"] if r.returncode == 0 else None

    def wait_healthy(self):
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            master = self.healthy()
            if master:
                return master
            time.sleep(0.5)
        raise RuntimeError(f"cluster {self.name} not healthy within {TIMEOUT}s")

    def present(self, ids):
        """Which of `ids` are in the table, read through the proxy (the current master)."""
        if not ids:
            return set()
        sql = f"select id from bench_switchover where id between {min(ids)} and {max(ids)}"
        for _ in range(20):
            r = subprocess.run([self.psql, self.dsn, "-X", "-q", "-A", "-t", "-c", sql], env=self.env,
                               capture_output=True, text=True, timeout=30)
            if r.returncode == 0:
                return {int(x) for x in r.stdout.split()}
            time.sleep(0.5)
        raise RuntimeError("cannot read the table back through the proxy")


class Writer(threading.Thread):
    """Writes numbered rows through the proxy; records (start, end, id, ok) with time.monotonic()."""

    def __init__(self, bench, kind):
        super().__init__(daemon=True)
        self.b, self.kind = bench, kind
        self.attempts, self.lock, self.stopping = [], threading.Lock(), threading.Event()
        self.session, self.pending, self.got = None, b"", []

    def record(self, start, wid, ok):
        with self.lock:
            self.attempts.append((start, time.monotonic(), wid, ok))

    def snapshot(self):
        with self.lock:
            return list(self.attempts)

    def run(self):
        while not self.stopping.is_set():
            wid, start = next(IDS), time.monotonic()
            ok = self.write_new(wid) if self.kind == "newconn" else self.write_persistent(wid)
            self.record(start, wid, ok)
            if not ok:
                time.sleep(0.01)
        self.close()

    def write_new(self, wid):
        try:
            r = subprocess.run([self.b.psql, self.b.dsn, "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c",
                                f"insert into bench_switchover values ({wid}) returning id"],
                               env=self.b.env, capture_output=True, text=True, timeout=WRITE_LIMIT)
            return r.returncode == 0 and r.stdout.strip() == str(wid)
        except subprocess.TimeoutExpired:
            return False

    def close(self):
        if self.session:
            self.session.kill()
            self.session.wait()
            self.session = None

    def write_persistent(self, wid):
        if self.session is None or self.session.poll() is not None:
            # Binary and unbuffered: lines are split here, so select() on the pipe never waits for bytes that
            # a buffered reader already took (a second line read together with the first would stall it).
            self.session = subprocess.Popen([self.b.psql, self.b.dsn, "-X", "-q", "-A", "-t"], env=self.b.env,
                                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                            stderr=subprocess.DEVNULL, bufsize=0)
            self.pending = b""
        self.got = []
        try:
            self.session.stdin.write(f"insert into bench_switchover values ({wid}) returning id;\n\\echo END\n"
                                     .encode())
        except OSError:
            self.close()
            return False
        fd, deadline = self.session.stdout.fileno(), time.monotonic() + WRITE_LIMIT
        while True:
            while b"\n" in self.pending:
                line, self.pending = self.pending.split(b"\n", 1)
                line = line.strip().decode(errors="replace")
                if line == "END":
                    return str(wid) in self.got
                self.got.append(line)
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([fd], [], [], remaining)[0]:
                break
            chunk = os.read(fd, 4096)
            if not chunk:  # psql exited: the connection broke
                break
            self.pending += chunk
        self.close()  # timeout or broken: a new session next time
        return False


def change_master(b, method, master):
    """Makes the master change; returns once it is over (a new master in the cluster data)."""
    if method == "switchover":
        r = b.stolonctl("switchover", "-y", "--timeout", "30s", timeout=TIMEOUT)
        if r.returncode != 0:
            raise RuntimeError(f"switchover failed: {r.stderr.strip()}")
        return
    r = b.stolonctl("failkeeper", master)
    if r.returncode != 0:
        raise RuntimeError(f"failkeeper failed: {r.stderr.strip()}")
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        cd = b.cd()
        m = cd and cd["dbs"].get(cd["cluster"]["status"].get("master", ""))
        if m and m["spec"]["keeperUID"] != master and cd["proxy"]["spec"].get("masterDbUid") == m["uid"]:
            return
        time.sleep(0.1)
    raise RuntimeError("no new master after failkeeper")


def measure(b, method, kind, master):
    w = Writer(b, kind)
    w.start()
    out = {"method": method, "replication": "sync" if b.sync else "async", "writer": kind, "ok": False}
    try:
        deadline = time.monotonic() + TIMEOUT
        while sum(1 for a in w.snapshot() if a[3]) < 20:
            if time.monotonic() > deadline:
                raise RuntimeError("writes did not commit before the master change")
            time.sleep(0.05)
        t0 = time.monotonic()
        out["loadavg_1m"] = os.getloadavg()[0]
        change_master(b, method, master)
        t1 = time.monotonic()
        out["change_seconds"] = round(t1 - t0, 3)
        # Until writes commit steadily again.
        while sum(1 for a in w.snapshot() if a[3] and a[0] > t1) < 20:
            if time.monotonic() > t1 + TIMEOUT:
                raise RuntimeError("writes did not resume after the master change")
            time.sleep(0.05)
    finally:
        w.stopping.set()
        w.join(10)
    attempts = w.snapshot()
    acked_ends = sorted(a[1] for a in attempts if a[3])
    before = [e for e in acked_ends if e <= t0]
    window = ([before[-1]] if before else []) + [e for e in acked_ends if e > t0]
    out["longest_gap"] = round(max((y - x for x, y in zip(window, window[1:])), default=0.0), 3)
    out["failed_writes"] = sum(1 for a in attempts if not a[3] and a[0] >= t0)
    acked = [a[2] for a in attempts if a[3]]
    present = b.present(acked)
    out["acked"] = len(acked)
    out["lost"] = sum(1 for i in acked if i not in present)
    out["ok"] = True
    return out


def report(results):
    lines = ["| method | replication | writer | runs ok | median longest gap (s) | max longest gap (s) | "
             "failed writes (total) | lost acknowledged writes |", "|---|---|---|---|---|---|---|---|"]
    keys = sorted({(r["method"], r["replication"], r["writer"]) for r in results})
    for key in keys:
        rs = [r for r in results if (r["method"], r["replication"], r["writer"]) == key]
        ok = [r for r in rs if r.get("ok")]
        gaps = [r["longest_gap"] for r in ok]
        med = f"{statistics.median(gaps):.3f}" if gaps else "-"
        mx = f"{max(gaps):.3f}" if gaps else "-"
        lines.append(f"| {key[0]} | {key[1]} | {key[2]} | {len(ok)}/{len(rs)} | {med} | {mx} | "
                     f"{sum(r['failed_writes'] for r in ok)} | {sum(r['lost'] for r in ok)} |")
    return "\n".join(lines) + "\n"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    args = ap.parse_args()
    b = Bench(args.bin)
    results_path = os.path.join(b.dir, "results.jsonl")
    plan = [("switchover", rep == "sync") for rep in REPLICATIONS if "switchover" in METHODS]
    if "failkeeper" in METHODS:
        plan.append(("failkeeper", True))
    failed = 0
    try:
        for method, sync in plan:
            b.new_cluster(sync)
            for run in range(1, RUNS + 1):
                for kind in WRITERS:
                    try:
                        master = b.wait_healthy()
                        r = measure(b, method, kind, master)
                    except (RuntimeError, subprocess.TimeoutExpired) as e:
                        r = {"method": method, "replication": "sync" if sync else "async", "writer": kind,
                             "ok": False, "error": str(e)}
                        failed += 1
                    r["run"] = run
                    log(json.dumps(r))
                    b.results.append(r)
                    with open(results_path, "a") as f:
                        f.write(json.dumps(r) + "\n")
            b.stop_cluster()
    finally:
        b.stop_all()
        text = report(b.results)
        print(text)
        if BENCH_OUT:
            open(BENCH_OUT, "w").write(text)
        if BENCH_LOGS:
            shutil.copytree(b.dir, BENCH_LOGS, dirs_exist_ok=True,
                            ignore=lambda d, names: [n for n in names if n in ("etcd",) or n.startswith("keeper")
                                                     and os.path.isdir(os.path.join(d, n))])
        shutil.rmtree(b.dir, ignore_errors=True)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
