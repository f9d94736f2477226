#!/usr/bin/env python3
"""Helper of scripts/bench-failover (standard library only; psql does the PostgreSQL side).

Subcommands:
  check       read `stolonctl clusterdata read` JSON on stdin; exit 0 and print "<master keeper> <master
              port>" when the cluster is healthy (phase normal, every keeper healthy, the master and
              `standbys` standby DBs healthy and converged, the proxies routed to the master; with --sync
              also a synchronous standby configured and confirmed, and no fake one), else exit 1 with the
              reason on stderr.
  measure     run the writer loop through the proxy, apply the fault once writes commit, and print one JSON
              object: the time from the fault to the first write committed after it.
  breakdown   read the component logs and print, as JSON, when the failover steps happened after the fault.
  report      read the JSON lines of all runs and print one Markdown table per (mode, intervals, replication),
              a summary, and the synchronous median against the asynchronous one of the same run.
"""

import argparse
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import threading
import time
from datetime import datetime, timezone


def cmd_check(args):
    try:
        cd = json.load(sys.stdin)
    except ValueError as e:
        return fail(f"cluster data not readable: {e}")
    status = cd.get("cluster", {}).get("status", {})
    if status.get("phase") != "normal":
        return fail(f"phase {status.get('phase')!r}")
    master = status.get("master", "")
    dbs = cd.get("dbs", {}) or {}
    keepers = cd.get("keepers", {}) or {}
    if len(keepers) != args.keepers:
        return fail(f"{len(keepers)} keepers in cluster data, want {args.keepers}")
    for uid, k in keepers.items():
        if not k.get("status", {}).get("healthy"):
            return fail(f"keeper {uid} not healthy")
    if master not in dbs:
        return fail("no master db")

    def ready(db):
        st = db.get("status", {})
        return st.get("healthy") and st.get("currentGeneration") == db.get("generation")

    mdb = dbs[master]
    if not ready(mdb):
        return fail(f"master db {master} not healthy and converged")
    standbys = [d for u, d in dbs.items() if u != master and d.get("spec", {}).get("role") == "standby"]
    good = [d for d in standbys if ready(d)]
    if len(good) != args.standbys or len(dbs) != args.standbys + 1:
        return fail(f"{len(good)} healthy standbys of {len(standbys)}, {len(dbs)} dbs, want {args.standbys}")
    if cd.get("proxy", {}).get("spec", {}).get("masterDbUid", "") != master:
        return fail("proxies not routed to the master yet")
    if args.sync:
        spec, st = mdb.get("spec", {}), mdb.get("status", {})
        configured = sorted(spec.get("synchronousStandbys") or [])
        confirmed = sorted(st.get("synchronousStandbys") or [])
        if not spec.get("synchronousReplication") or not configured:
            return fail("no synchronous standby configured")
        if configured != confirmed:
            return fail(f"synchronous standbys {configured} configured, {confirmed} confirmed")
        if spec.get("externalSynchronousStandbys"):
            return fail(f"external synchronous standbys {spec['externalSynchronousStandbys']}")
    print(mdb["spec"]["keeperUID"], mdb["status"].get("port", ""))
    return 0


def fail(msg):
    print(msg, file=sys.stderr)
    return 1


# What PostgreSQL warns when a commit's wait for its synchronous standbys is cancelled (here by
# statement_timeout): the statement then reports success, but the commit was not acknowledged by a
# synchronous standby, so the writer counts the attempt as failed.
SYNC_WAIT_CANCELLED = "canceling wait for synchronous replication"


class Writer(threading.Thread):
    """Inserts one row through the proxy per attempt, each attempt a fresh psql process (connect_timeout 1 s,
    statement_timeout 1 s, and a hard limit of `limit` seconds on the process), pausing `pause` seconds
    between attempts. Records (start, end, ok, server port, sync wait cancelled) with time.monotonic(); an
    attempt whose wait for the synchronous standbys was cancelled is not ok."""

    def __init__(self, psql, dsn, password, pause, limit):
        super().__init__(daemon=True)
        self.cmd = [psql, dsn, "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c",
                    "set statement_timeout = 1000; "
                    "insert into bench_failover(port) values (inet_server_port()) returning port"]
        self.env = dict(os.environ, PGPASSWORD=password, PGCONNECT_TIMEOUT="1")
        self.pause = pause
        self.limit = limit
        self.attempts = []
        self.lock = threading.Lock()
        self.stopping = threading.Event()

    def run(self):
        while not self.stopping.is_set():
            start = time.monotonic()
            port = None
            cancelled = False
            try:
                r = subprocess.run(self.cmd, env=self.env, capture_output=True, text=True, timeout=self.limit)
                cancelled = SYNC_WAIT_CANCELLED in r.stderr
                ok = r.returncode == 0 and not cancelled
                if ok:
                    port = r.stdout.strip()
            except subprocess.TimeoutExpired:
                ok = False
            end = time.monotonic()
            with self.lock:
                self.attempts.append((start, end, ok, port, cancelled))
            self.stopping.wait(self.pause)

    def snapshot(self):
        with self.lock:
            return list(self.attempts)


def signal_target(pid, group, sig):
    """Sends `sig` to the process group led by `pid` when `group` (the postmaster and its children), else to
    `pid`."""
    try:
        if group:
            os.killpg(pid, sig)
        else:
            os.kill(pid, sig)
    except ProcessLookupError:
        pass


def cmd_measure(args):
    password = open(args.password_file).read().strip()
    sig = {"kill": signal.SIGKILL, "stop": signal.SIGSTOP}[args.mode]
    w = Writer(args.psql, args.dsn, password, args.pause, args.limit)
    w.start()
    out = {"mode": args.mode, "ok": False}
    deadline = time.monotonic() + args.timeout
    # Warm-up: writes must commit steadily before the fault.
    while time.monotonic() < deadline:
        a = w.snapshot()
        if len(a) >= 3 and all(x[2] for x in a[-3:]):
            out["port_before"] = a[-1][3]
            break
        time.sleep(0.05)
    else:
        w.stopping.set()
        out["error"] = "writes through the proxy did not commit before the fault"
        print(json.dumps(out))
        return 0
    fault_wall = time.time()
    fault = time.monotonic()
    signal_target(args.keeper_pid, False, sig)
    signal_target(args.postmaster_pid, args.postmaster_group, sig)
    out["fault_wall"] = fault_wall
    out["fault_utc"] = datetime.fromtimestamp(fault_wall, timezone.utc).isoformat(timespec="milliseconds")
    out["signal_spread_ms"] = round((time.monotonic() - fault) * 1000, 3)
    out["loadavg_1m"] = os.getloadavg()[0]
    deadline = fault + args.timeout
    first = None
    while time.monotonic() < deadline:
        first = next((x for x in w.snapshot() if x[0] >= fault and x[2]), None)
        if first:
            break
        time.sleep(0.02)
    w.stopping.set()
    attempts = [x for x in w.snapshot() if x[0] >= fault]
    out["attempts_after_fault"] = len(attempts)
    # Commits whose synchronous wait was cancelled: committed on the new master but never acknowledged.
    out["sync_waits_cancelled"] = sum(1 for x in attempts if x[4])
    if not first:
        out["error"] = f"no write committed within {args.timeout}s of the fault"
        print(json.dumps(out))
        return 0
    before = [x for x in attempts if x[1] <= first[0]]
    out.update(
        ok=True,
        seconds=round(first[1] - fault, 3),
        # The write committed between the start and the end of the first successful attempt; the route may
        # already have been open since the end of the failed attempt before it.
        first_ok_start=round(first[0] - fault, 3),
        last_failed_end=round(before[-1][1] - fault, 3) if before else None,
        resolution=round(first[1] - (before[-1][1] if before else fault), 3),
        port_after=first[3],
    )
    print(json.dumps(out))
    return 0


LOG_LINE = re.compile(r"^(?:\x1b\[[0-9;]*m)*(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z)")
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def parse_ts(s):
    base, _, frac = s.rstrip("Z").partition(".")
    t = datetime.strptime(base, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=timezone.utc).timestamp()
    return t + (float("0." + frac) if frac else 0.0)


def log_events(path, after):
    try:
        with open(path, errors="replace") as f:
            for line in f:
                m = LOG_LINE.match(line)
                if m:
                    t = parse_ts(m.group(1))
                    if t >= after:
                        yield t, ANSI.sub("", line)
    except FileNotFoundError:
        return


# Failover steps: (name, which logs, what the line contains (any of; older builds' wording last), an extra
# pattern it must match or None).
PROMOTING = ("promoting database", "promoting postgres")
STEPS = [
    ("detected", "sentinel", ("master db is failed",), None),
    ("elected", "sentinel", ("electing db as the new master",), None),
    ("promoting", "keeper", PROMOTING, None),
    # The change that set a master, not the one that emptied the target.
    ("routed", "sentinel", ("proxy routing changed",), re.compile(r"master=[a-z0-9]")),
    ("proxy_forwarding", "proxy", ("proxying to master address", "forwarding to the master"), None),
    # A standby other than the new master streams from it (PostgreSQL's walreceiver, in the keeper's log).
    ("standby_streaming", "standby", ("started streaming WAL from primary",), None),
    # The leader configures a real synchronous standby on the new master.
    ("sync_configured", "sentinel", ("synchronous standbys",), re.compile(r'synchronous_standbys=\[\"')),
]


def cmd_breakdown(args):
    """Steps after the fault, in seconds from it, from the first matching log line of each kind."""
    fault = args.fault_wall
    logs = {"sentinel": args.sentinel_logs, "keeper": args.keeper_logs, "proxy": args.proxy_logs}
    # The new master: the keeper that logged the promotion.
    promoted = None
    for p in args.keeper_logs:
        t = next((t for t, line in log_events(p, fault) if any(n in line for n in PROMOTING)), None)
        if t is not None and (promoted is None or t < promoted[0]):
            promoted = (t, p)
    old = f"/{args.old_master}.log" if args.old_master else None
    logs["standby"] = [p for p in args.keeper_logs
                       if (not promoted or p != promoted[1]) and not (old and p.endswith(old))]
    out = {}
    for name, which, needle, pattern in STEPS:
        times = []
        for p in logs[which]:
            for t, line in log_events(p, fault):
                if any(n in line for n in needle) and (pattern is None or pattern.search(line)):
                    times.append(t)
                    break
        if times:
            out[name] = round(min(times) - fault, 3)
    # Passes the leader skipped between the fault and the routing to the new master because a store request
    # failed ("... retrying next pass"): each one delays the failover by up to a sleepInterval.
    end = fault + out.get("routed", 120.0)
    skipped = 0
    for p in args.sentinel_logs:
        lines = [(t, line) for t, line in log_events(p, fault) if t <= end]
        if any("electing db as the new master" in line for _, line in lines):
            skipped = max(skipped, sum("retrying next pass" in line for _, line in lines))
    out["leader_skipped_passes"] = skipped
    print(json.dumps(out))
    return 0


def fmt(x):
    return f"{x:.2f}"


MODE_NAME = {"kill": "SIGKILL keeper + postmaster", "stop": "SIGSTOP keeper + postmaster"}
STEP_COLUMNS = ("detected", "elected", "promoting", "routed", "proxy_forwarding", "standby_streaming",
                "sync_configured")


def replication_of(r):
    return r.get("replication", "async")


def cmd_report(args):
    runs = [json.loads(line) for line in open(args.results) if line.strip()]
    groups = {}
    for r in runs:
        groups.setdefault((r["mode"], r["intervals"], replication_of(r)), []).append(r)
    for (mode, iv, repl), rs in groups.items():
        ok = [r for r in rs if r.get("ok")]
        fi = rs[0]["fail_interval"]
        si = rs[0]["sleep_interval"]
        print(f"### {MODE_NAME.get(mode, mode)}, {iv} intervals (sleepInterval {si} s, failInterval {fi} s),"
              f" {repl} replication\n")
        print("| run | fault to first committed write (s) | overhead (s) | resolution (s) | "
              + " | ".join(c.replace("_", " ") for c in STEP_COLUMNS)
              + " | leader passes skipped on store errors | sync waits cancelled |")
        print("|" + "---|" * (len(STEP_COLUMNS) + 6))
        for i, r in enumerate(rs, 1):
            b = r.get("breakdown", {})
            steps = " | ".join(fmt(b[k]) if k in b else "-" for k in STEP_COLUMNS)
            steps += f" | {b.get('leader_skipped_passes', '-')} | {r.get('sync_waits_cancelled', '-')}"
            if r.get("ok"):
                print(f"| {i} | {fmt(r['seconds'])} | {fmt(r['seconds'] - fi)} | {fmt(r['resolution'])} | {steps} |")
            else:
                print(f"| {i} | failed: {r.get('error', '?')} | - | - | {steps} |")
        print()
        if ok:
            secs = [r["seconds"] for r in ok]
            med = statistics.median(secs)
            print(f"failInterval {fi} s; {len(ok)}/{len(rs)} runs recovered; times "
                  f"{', '.join(fmt(s) for s in secs)} s; median {fmt(med)} s, range {fmt(min(secs))}-"
                  f"{fmt(max(secs))} s; median overhead (median - failInterval) {fmt(med - fi)} s")
            loads = [r["loadavg_1m"] for r in rs if "loadavg_1m" in r]
            if loads:
                print(f"1-minute load average at the faults: {min(loads):.1f}-{max(loads):.1f}")
            print()
        else:
            print(f"failInterval {fi} s; no run recovered\n")
    print("### Summary\n")
    print("Overhead = time - failInterval, split into the detection lag (first sentinel log line declaring the"
          " master failed, minus failInterval) and what follows detection (first committed write minus"
          " detection); medians over the runs that recovered.\n")
    print("| fault | intervals | replication | failInterval (s) | runs ok | times (s) | median (s) | min-max (s) |"
          " median overhead (s) | detection lag (s) | detection to write (s) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    medians = {}
    for (mode, iv, repl), rs in groups.items():
        ok = [r for r in rs if r.get("ok")]
        secs = [r["seconds"] for r in ok]
        fi = rs[0]["fail_interval"]
        name = (f"{MODE_NAME.get(mode, mode)} | {iv} (sleepInterval {rs[0]['sleep_interval']} s) | {repl} | {fi} | "
                f"{len(ok)}/{len(rs)}")
        if not ok:
            print(f"| {name} | - | - | - | - | - | - |")
            continue
        med = statistics.median(secs)
        medians[(mode, iv, repl)] = med
        det = [r["breakdown"]["detected"] for r in ok if "detected" in r.get("breakdown", {})]
        lag = fmt(statistics.median(det) - fi) if det else "-"
        after = [r["seconds"] - r["breakdown"]["detected"] for r in ok if "detected" in r.get("breakdown", {})]
        after_s = fmt(statistics.median(after)) if after else "-"
        print(f"| {name} | {', '.join(fmt(x) for x in secs)} | {fmt(med)} | {fmt(min(secs))}-{fmt(max(secs))} | "
              f"{fmt(med - fi)} | {lag} | {after_s} |")
    pairs = [(m, iv) for (m, iv, repl) in medians if repl == "sync" and (m, iv, "async") in medians]
    if pairs:
        print("\n### Synchronous against asynchronous (same run)\n")
        print("| fault | intervals | async median (s) | sync median (s) | sync - async (s) |")
        print("|---|---|---|---|---|")
        for m, iv in pairs:
            a, sy = medians[(m, iv, "async")], medians[(m, iv, "sync")]
            print(f"| {MODE_NAME.get(m, m)} | {iv} | {fmt(a)} | {fmt(sy)} | {sy - a:+.2f} |")
    return 0


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("check")
    c.add_argument("--keepers", type=int, default=3)
    c.add_argument("--standbys", type=int, default=2)
    c.add_argument("--sync", action="store_true")
    m = sub.add_parser("measure")
    m.add_argument("--psql", required=True)
    m.add_argument("--dsn", required=True)
    m.add_argument("--password-file", required=True)
    m.add_argument("--mode", choices=["kill", "stop"], required=True)
    m.add_argument("--keeper-pid", type=int, required=True)
    m.add_argument("--postmaster-pid", type=int, required=True)
    m.add_argument("--postmaster-group", action="store_true")
    m.add_argument("--timeout", type=float, required=True)
    m.add_argument("--pause", type=float, default=0.05)
    m.add_argument("--limit", type=float, default=2.0)
    b = sub.add_parser("breakdown")
    b.add_argument("--fault-wall", type=float, required=True)
    b.add_argument("--old-master", default="")
    b.add_argument("--sentinel-logs", nargs="+", default=[])
    b.add_argument("--keeper-logs", nargs="+", default=[])
    b.add_argument("--proxy-logs", nargs="+", default=[])
    r = sub.add_parser("report")
    r.add_argument("results")
    a = p.parse_args()
    return {"check": cmd_check, "measure": cmd_measure, "breakdown": cmd_breakdown, "report": cmd_report}[a.cmd](a)


if __name__ == "__main__":
    sys.exit(main())
