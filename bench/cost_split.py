"""Puts each perf sample of each server in exactly one bucket and prints, as Markdown,
the CPU µs per callback of every bucket for every server (bench/cost_split.sh).
Arguments: connections seconds broker checks, then name folded-file wrk-json per server.
A sample is weighted by its CPU time (perf's cpu-clock period, in ns)."""
import collections
import json
import sys

# (bucket, thread it runs on or None for any, frame marks): the first that matches wins,
# so a bucket listed early takes its samples from the buckets below it.
BUCKETS = [
    ("librdkafka's broker threads (batching, compression, sending)", "rdk:broker", [""]),
    ("delivery reports (the bridge's tracking, on the polling thread)", "producer_pollin", ["tim_kafka_bridge"]),
    ("librdkafka's polling and main threads (the rest)", ("producer_pollin", "rdk:main"), [""]),
    ("the spool's reader and housekeeping threads (ack = durable)", "spool-", [""]),
    ("librdkafka enqueue (rd_kafka_producev)", None, ["rd_kafka_producev"]),
    ("admit: signature, body parsing, normalization, serialization", None, ["http::admit::admit"]),
    ("query parsing", None, ["CallbackQuery::parse"]),
    ("the spool's append (ack = durable)", None, ["tim_kafka_bridge::spool"]),
    ("the bridge's buffer and delivery tracking", None, ["delivery::memory", "kafka::forwarder", "route::Routes"]),
    ("replay filter", None, ["dedup::"]),
    ("metrics", None, ["prometheus_client"]),
    ("the handler's own code (routing, checks, answer)", None, ["http::route", "http::callback", "http::emit", "http::error"]),
    ("writing answers (writev and the kernel's TCP)", None, ["poll_flush"]),
    ("reading requests (read and the kernel's TCP)", None, ["poll_read"]),
    ("hyper's dispatch and the connection's own code", None, ["hyper::proto", "http::server"]),
    ("accepting connections", None, ["accept"]),
    ("epoll, timers, scheduler, waking and parking", None, [""]),
]


def split(path):
    buckets, total = collections.Counter(), 0
    for line in open(path):
        stack, weight = line.rsplit(" ", 1)
        weight = int(weight)
        total += weight
        thread, _, rest = stack.partition(";")
        thread = thread.rstrip("0123456789-/")
        for name, on, marks in BUCKETS:
            if on is not None and not thread.startswith(on):
                continue
            if any(m in rest for m in marks):
                buckets[name] += weight
                break
    return buckets, total


def main():
    connections, seconds, broker, checks = sys.argv[1:5]
    seconds = float(seconds)
    servers = []
    args = sys.argv[5:]
    for i in range(0, len(args), 3):
        name, folded, wrk = args[i:i + 3]
        wrk = json.loads(wrk)
        buckets, total = split(folded)
        per = 1 / (wrk["rps"] * seconds) / 1000  # ns of samples -> µs per callback
        servers.append((name, wrk, {k: v * per for k, v in buckets.items()}, total * per))
    names = [s[0] for s in servers]
    print(f"# Where each callback's CPU goes: the bridge against the essential work, {connections} connections\n")
    print(f"{broker}; wrk -t2 at {connections} connections saturating each server in turn, perf at 499 Hz "
          f"with DWARF stacks for {seconds:g} s of it (`bench/cost_split.sh`). CPU µs per callback answered, "
          "by bucket (each sample in exactly one, the first that matches in this order); "
          "the essential work is `bench/essential.rs`.\n")
    print("| | " + " | ".join(f"{n}" for n in names) + " |")
    print("|---|" + "---|" * len(names))
    print("| callbacks/s | " + " | ".join(f"{s[1]['rps']:,}" for s in servers) + " |")
    print("| p99 ms | " + " | ".join(f"{s[1]['p99_ms']}" for s in servers) + " |")
    print("| **CPU µs per callback** | " + " | ".join(f"**{s[3]:.1f}**" for s in servers) + " |")
    for bucket, _, _ in BUCKETS:
        values = [s[2].get(bucket, 0.0) for s in servers]
        if max(values) < 0.05:
            continue
        print(f"| {bucket} | " + " | ".join(f"{v:.1f}" for v in values) + " |")
    print()
    for line in checks.splitlines():
        print(f"- {line}")


main()
