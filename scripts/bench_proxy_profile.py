#!/usr/bin/env python3
"""Where the time goes: turns machine-wide `perf record -a -e cpu-clock` samples, one recording per target of
scripts/bench-proxy (direct, kernel, userspace, HAProxy) taken during the same pgbench run, into microseconds
of CPU per transaction by category (user code of each program, the TCP/IP stack, sockmap and BPF, the
scheduler, syscall entry and epoll, memory copies, other kernel work, idle).

Usage: bench_proxy_profile.py [--top N] CPUS FREQUENCY TARGET=PERF_SCRIPT_OUTPUT:TRANSACTIONS:SECONDS ...
  PERF_SCRIPT_OUTPUT is the output of `perf script -F comm,ip,sym,dso` of one recording made with
  `-F FREQUENCY`; TRANSACTIONS is how many pgbench completed during it; SECONDS how long it recorded.
  Prints a markdown table; with --top N, then each target's N most sampled kernel symbols with their row.

Every sample stands for 1/FREQUENCY s of one CPU, so a category's samples divided by FREQUENCY are the CPU
time it used, and divided by TRANSACTIONS its cost per transaction. Idle is what remains of the machine's
time (CPUS x SECONDS) after the busy samples, so the column sums to the machine's whole time per
transaction; the samples row says how much of the busy-or-idle time perf saw (near 1.00: none lost).
"""
import collections
import re
import sys

SAMPLE = re.compile(r"^\s*(?P<comm>.+?)\s+(?P<ip>[0-9a-f]+)\s+(?P<sym>.*?)\s+\((?P<dso>[^()]*)\)\s*$")

# Kernel symbol families, matched in order (first match wins); prefixes unless they end with '*' inside.
KERNEL_FAMILIES = [
    ("sockmap, psock backlog and BPF", ("sk_psock", "sk_skb", "sock_map", "sock_hash", "sk_msg", "bpf_",
                                         "__bpf", "skb_send_sock", "__skb_send_sock", "sk_redirect",
                                         "tcp_bpf", "sk_stream_verdict")),
    ("memory copies", ("copy_user", "_copy_to", "_copy_from", "copy_to_user", "copy_from_user", "memcpy",
                       "__memcpy", "memmove", "__memmove", "rep_movs", "skb_copy", "__skb_datagram_iter",
                       "skb_datagram_iter", "simple_copy_to_iter")),
    ("TCP/IP stack (loopback)", ("tcp", "__tcp", "ip_", "__ip_", "ipv4_", "inet", "__inet", "skb_", "__skb",
                                 "kfree_skb", "__kfree_skb", "consume_skb", "__alloc_skb", "alloc_skb",
                                 "__dev_queue_xmit", "dev_hard_start_xmit", "loopback", "netif_", "__netif",
                                 "net_rx_action", "process_backlog", "__napi", "napi_", "nf_", "raw_local_deliver",
                                 "sock_", "__sock", "sk_", "__sk_", "lock_sock", "release_sock",
                                 "__release_sock", "security_sock", "security_socket", "dst_", "eth_type",
                                 "validate_xmit", "sch_direct", "__qdisc", "pfifo", "__local_bh", "do_softirq",
                                 "__do_softirq", "handle_softirqs", "irq_exit", "page_frag", "mem_cgroup_charge_skmem",
                                 "__sk_mem", "sk_mem", "csum", "__build_skb",
                                 "__send", "__sys_send", "__sys_recv", "sock_recvmsg", "sock_sendmsg",
                                 "unix_", "__unix")),
    ("scheduler, wake-ups, context switches", ("schedule", "__schedule", "try_to_wake_up", "wake_up",
                                               "__wake_up", "enqueue", "dequeue", "pick_next", "pick_task",
                                               "update_curr", "update_load", "update_cfs", "update_rq",
                                               "finish_task_switch", "__switch_to", "switch_mm", "psi_",
                                               "ttwu", "select_task_rq", "set_next", "put_prev", "check_preempt",
                                               "resched", "sched_", "__sched", "account_", "cpuacct",
                                               "reweight", "place_entity", "hrtick", "native_sched",
                                               "prepare_task_switch", "raw_spin_rq", "_raw_spin", "__queue_work",
                                               "queue_work", "queue_delayed_work", "__queue_delayed_work",
                                               "worker_thread", "process_one_work", "kick_pool", "wq_",
                                               "autoremove_wake", "default_wake", "pollwake", "ep_poll_callback",
                                               "__flush_work", "__cond_resched", "io_schedule", "futex",
                                               "__futex", "hrtimer", "__hrtimer", "timerqueue", "restore_regs",
                                               "irqentry", "sysvec_", "asm_sysvec", "__sysvec", "tick_",
                                               "clockevents", "lapic", "native_apic", "x2apic")),
    ("syscall entry/exit, epoll and poll", ("entry_SYSCALL", "do_syscall", "syscall_", "x64_sys", "__x64_sys",
                                            "__do_sys", "do_sys", "ep_", "do_epoll", "__ep_", "epoll",
                                            "do_poll", "do_select", "core_sys_select", "__fdget", "fdget",
                                            "fput", "__fput", "fget", "__fget", "exit_to_user",
                                            "syscall_exit", "ksys_", "vfs_", "rw_verify_area",
                                            "__audit", "audit_", "security_file", "fsnotify", "__fsnotify",
                                            "clear_bhb", "srso", "retbleed", "__x86_return", "entry_",
                                            "native_irq_return", "error_entry")),
]
IDLE_SYMBOLS = ("default_idle", "cpu_idle", "do_idle", "native_safe_halt", "pv_native_safe_halt",
                "acpi_idle", "intel_idle", "poll_idle", "cpuidle", "arch_cpu_idle", "mwait_idle")
ROWS = ["pgbench (user code)", "postgres (user code)", "forwarder (user code: stolon-proxy or haproxy)",
        "other programs (user and kernel)", "TCP/IP stack (loopback)", "sockmap, psock backlog and BPF",
        "memory copies", "scheduler, wake-ups, context switches", "syscall entry/exit, epoll and poll",
        "other kernel", "idle"]
FORWARDERS = ("stolon-proxy", "tokio-runtime", "haproxy")
# The benchmark's own processes and the kernel threads that work for them; any other program's samples
# (user and kernel) are counted as "other programs", so other load on the machine stays out of the families.
BENCHMARK = ("pgbench", "postgres") + FORWARDERS + ("kworker", "ksoftirqd")


def user_row(comm):
    if comm.startswith("pgbench"):
        return ROWS[0]
    if comm.startswith("postgres"):
        return ROWS[1]
    if comm.startswith(FORWARDERS):
        return ROWS[2]
    return ROWS[3]


def kernel_row(sym):
    if sym.startswith("bpf_lsm"):  # security hooks on every file operation, not sockmap
        return "syscall entry/exit, epoll and poll"
    for row, prefixes in KERNEL_FAMILIES:
        if sym.startswith(prefixes):
            return row
    return "other kernel"


def classify(comm, sym, dso):
    """The row of one sample."""
    if comm.startswith("swapper") or sym.startswith(IDLE_SYMBOLS):
        return "idle"
    if not comm.startswith(BENCHMARK):
        return ROWS[3]
    if dso == "kernel.kallsyms" or dso.startswith("[kernel") or dso.startswith("bpf_prog") or sym.startswith("bpf_prog_"):
        return kernel_row(sym)
    return user_row(comm)


def profile(path):
    """Sample counts by row, and how many samples ran in kernel-worker context."""
    counts = collections.Counter()
    symbols = collections.Counter()
    in_kworkers = 0
    with open(path, errors="replace") as f:
        for line in f:
            m = SAMPLE.match(line)
            if not m:
                continue
            row = classify(m["comm"].strip(), m["sym"], m["dso"].strip("[]"))
            counts[row] += 1
            if row not in ROWS[:4] and row != "idle":
                symbols[(m["sym"], row)] += 1
            if m["comm"].strip().startswith("kworker"):
                in_kworkers += 1
    return counts, in_kworkers, symbols


def main(argv):
    top = 0
    if len(argv) > 2 and argv[1] == "--top":
        top, argv = int(argv[2]), argv[:1] + argv[3:]
    if len(argv) < 4:
        sys.exit(__doc__)
    cpus, freq = float(argv[1]), float(argv[2])
    columns = []
    for spec in argv[3:]:
        target, rest = spec.split("=", 1)
        path, txns, seconds = rest.rsplit(":", 2)
        counts, kw, symbols = profile(path)
        txns, machine_us = max(int(txns), 1), cpus * float(seconds) * 1e6
        us = {row: counts[row] / freq * 1e6 / txns for row in ROWS}
        us["idle"] = max(machine_us / txns - sum(v for r, v in us.items() if r != "idle"), 0.0)
        seen = sum(counts.values()) / freq * 1e6 / machine_us
        columns.append((target, us, kw / freq * 1e6 / txns, machine_us / txns, seen, symbols, freq, txns))
    print("| µs of CPU per transaction | " + " | ".join(c[0] for c in columns) + " |")
    print("|---|" + "---|" * len(columns))
    for row in ROWS:
        print(f"| {row} | " + " | ".join(f"{c[1][row]:.1f}" for c in columns) + " |")
    print("| **busy (all but idle)** | " + " | ".join(f"**{c[3] - c[1]['idle']:.1f}**" for c in columns) + " |")
    print("| the machine's time per transaction (CPUs x seconds / transactions) | "
          + " | ".join(f"{c[3]:.1f}" for c in columns) + " |")
    print("| of the busy time, in kernel workers (kworker) | " + " | ".join(f"{c[2]:.1f}" for c in columns) + " |")
    print("| samples seen / samples expected | " + " | ".join(f"{c[4]:.2f}" for c in columns) + " |")
    for c in columns if top else []:
        print(f"\n{c[0]}: the {top} most sampled kernel symbols (µs per transaction, row)")
        for (sym, row), n in c[5].most_common(top):
            print(f"  {n / c[6] * 1e6 / c[7]:7.2f}  {sym}  ({row})")


if __name__ == "__main__":
    main(sys.argv)
