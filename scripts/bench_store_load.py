#!/usr/bin/env python3
"""Helper of scripts/bench-store-load (standard library only).

Subcommands:
  counters    print, as JSON, the store server's own request counters: {"total": N, ...parts}
                etcdv3      grpc_server_handled_total (every finished RPC) + grpc_server_msg_received_total of
                            streaming RPCs (every keep-alive or watch request sent on an open stream), parts
                            per gRPC method
                etcdv2      etcd_http_received_total (every v2 keys API request, long polls included), parts
                            per HTTP method
                consul      consul_api_http_count (every HTTP API request) except the metrics endpoint itself
                kubernetes  apiserver_request_total for pods, configmaps and events (the API server's own
                            housekeeping requests on other resources are left out)
  delta       the per-minute rate between two `counters` outputs taken SECONDS apart
  pod         create a pod (a plain API object, labels given) on a kube-apiserver with the admin identity
  report      read the JSON lines of all runs and print the Markdown table
"""

import argparse
import json
import re
import ssl
import sys
import urllib.request

LINE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)')
LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def samples(text):
    """(name, labels, value) of every sample of a Prometheus text exposition."""
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = LINE.match(line)
        if not m:
            continue
        labels = dict(LABEL.findall(m.group(2) or ""))
        try:
            value = float(m.group(3))
        except ValueError:
            continue
        yield m.group(1), labels, value


def fetch(url, certs=None):
    ctx = None
    if certs:
        ctx = ssl.create_default_context(cafile=f"{certs}/ca.crt")
        ctx.load_cert_chain(f"{certs}/admin.crt", f"{certs}/admin.key")
    with urllib.request.urlopen(url, timeout=10, context=ctx) as r:
        return r.read().decode()


def count(backend, text):
    parts = {}
    if backend == "etcdv3":
        total = 0.0
        for name, labels, v in samples(text):
            method = labels.get("grpc_method", "?")
            if name == "grpc_server_handled_total":
                key = method if labels.get("grpc_type") == "unary" else f"{method} streams closed"
            elif name == "grpc_server_msg_received_total" and labels.get("grpc_type") != "unary":
                key = f"{method} stream messages"
            else:
                continue
            total += v
            parts[key] = parts.get(key, 0.0) + v
    elif backend == "etcdv2":
        total = 0.0
        for n, labels, v in samples(text):
            if n == "etcd_http_received_total":
                total += v
                key = labels.get("method", "?")
                parts[key] = parts.get(key, 0.0) + v
    elif backend == "consul":
        total = 0.0
        for n, labels, v in samples(text):
            if n == "consul_api_http_count" and labels.get("path") and not labels["path"].startswith("v1_agent_metrics"):
                total += v
                key = f'{labels.get("method")} {labels["path"]}'
                parts[key] = parts.get(key, 0.0) + v
    elif backend == "kubernetes":
        total = 0.0
        for n, labels, v in samples(text):
            if n == "apiserver_request_total" and labels.get("resource") in ("pods", "configmaps", "events"):
                total += v
                key = f'{labels.get("verb")} {labels["resource"]}'
                parts[key] = parts.get(key, 0.0) + v
    else:
        raise SystemExit(f"unknown backend {backend}")
    return {"total": total, **parts}


def cmd_counters(args):
    text = fetch(args.url, args.certs)
    print(json.dumps(count(args.backend, text)))
    return 0


def cmd_delta(args):
    before, after = json.loads(args.before), json.loads(args.after)
    scale = 60.0 / args.seconds
    per_minute = (after["total"] - before["total"]) * scale
    parts = {k: (v - before.get(k, 0.0)) * scale for k, v in after.items() if k != "total"}
    print(json.dumps({"per_minute": per_minute, "parts": parts}))
    return 0


def cmd_pod(args):
    body = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": args.name, "labels": dict(kv.split("=", 1) for kv in args.label)},
        "spec": {"containers": [{"name": "main", "image": "stolon-rs-bench"}]},
    }
    ctx = ssl.create_default_context(cafile=f"{args.certs}/ca.crt")
    ctx.load_cert_chain(f"{args.certs}/admin.crt", f"{args.certs}/admin.key")
    req = urllib.request.Request(f"{args.server}/api/v1/namespaces/default/pods", data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(req, timeout=10, context=ctx):
        pass
    return 0


def cmd_report(args):
    runs = [json.loads(line) for line in open(args.results) if line.strip()]
    idle = {r["backend"]: r["per_minute"] for r in runs if r.get("idle")}
    print("| backend | keepers | intervals | build | requests/min | net of idle | breakdown (per minute) |")
    print("|---|---|---|---|---|---|---|")
    for r in runs:
        if r.get("idle"):
            print(f'| {r["backend"]} | - | - | idle server | {r["per_minute"]:.1f} | - | |')
            continue
        if not r.get("ok"):
            print(f'| {r["backend"]} | {r["keepers"]} | {r["intervals"]} | {r["build"]} | failed: {r.get("error")} | | |')
            continue
        net = r["per_minute"] - idle.get(r["backend"], 0.0)
        parts = ", ".join(f"{k} {v:.1f}" for k, v in sorted(r["parts"].items()) if v >= 0.05)
        print(f'| {r["backend"]} | {r["keepers"]} | {r["intervals"]} | {r["build"]} | {r["per_minute"]:.1f} '
              f'| {net:.1f} | {parts} |')
    return 0


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("counters")
    c.add_argument("--backend", required=True)
    c.add_argument("--url", required=True)
    c.add_argument("--certs")
    d = sub.add_parser("delta")
    d.add_argument("before")
    d.add_argument("after")
    d.add_argument("--seconds", type=float, required=True)
    k = sub.add_parser("pod")
    k.add_argument("--server", required=True)
    k.add_argument("--certs", required=True)
    k.add_argument("--name", required=True)
    k.add_argument("--label", action="append", default=[])
    r = sub.add_parser("report")
    r.add_argument("results")
    args = p.parse_args()
    return {"counters": cmd_counters, "delta": cmd_delta, "pod": cmd_pod, "report": cmd_report}[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())
