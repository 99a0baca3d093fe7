"""Writes bench/results/<date>-<commit>.md and .svg from one run of bench/run.sh."""
import json
import os
import platform
import subprocess
import sys

out, kafka, http64, http256, duration, rows, series, essential, fastapi, e2e = sys.argv[1:11]
kafka, http64, http256 = json.loads(kafka), json.loads(http64), json.loads(http256)
essential, fastapi = json.loads(essential), json.loads(fastapi)
series = [line.split() for line in series.strip().splitlines()]


def version(cmd):
    try:
        return subprocess.run(cmd, capture_output=True, text=True).stdout.strip().splitlines()[0]
    except Exception:
        return "unknown"


cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "unknown")
mem = next((l.split()[1] for l in open("/proc/meminfo") if l.startswith("MemTotal")), "0")
http_ceiling = max(http64["rps"], http256["rps"])
lower = min(http_ceiling, kafka["records_per_second"])
best = {}
for row in rows.strip().splitlines():
    cells = [c.strip() for c in row.strip("|").split("|")]
    best[cells[0]] = max(best.get(cells[0], 0), float(cells[2]))

lines = [
    f"# Benchmark {os.path.basename(out)}",
    "",
    f"Machine: {os.cpu_count()} cores ({cpu}), {int(mem) // 1024} MiB; broker ({os.environ.get('BROKER_NAME', 'tansu, memory engine')}), "
    f"load generator (wrk) and bridge on the same machine. {duration} s per saturation run.",
    f"Versions: {version(['rustc', '--version'])}; {os.environ.get('BROKER_NAME') or version(['tansu', '--version'])}; "
    f"{version(['wrk', '--version']) or 'wrk'}; {platform.platform()}.",
    "",
    "## Ceilings, measured in the same run",
    "",
    "| ceiling | rate |",
    "|---|---|",
    f"| HTTP: bare hyper server, read body, answer OK (64 / 256 connections) | {http64['rps']:.0f} / {http256['rps']:.0f} callbacks/s, p99 {http64['p99_ms']} / {http256['p99_ms']} ms |",
    f"| Kafka: bare rdkafka producer, the bridge's settings and event size | {kafka['records_per_second']:.0f} records/s |",
    "",
    "## References, measured in the same run (64 connections)",
    "",
    "| reference | callbacks/s | p99 ms | ratio to the HTTP ceiling |",
    "|---|---|---|---|",
    f"| the essential work alone: bare hyper + the bridge's `http::admit` + librdkafka enqueue (bench/essential.rs) | {essential['rps']:.0f} | {essential['p99_ms']} | {essential['rps'] / max(http64['rps'], http256['rps']):.2f} |",
    (f"| FastAPI + confluent-kafka, uvicorn (uvloop, httptools), one worker per core (bench/fastapi_service.py) | {fastapi['rps']:.0f} | {fastapi['p99_ms']} | {fastapi['rps'] / max(http64['rps'], http256['rps']):.3f} |"
     if fastapi else "| FastAPI + confluent-kafka | not measured (could not install it) | | |"),
    "",
    "## The bridge at saturation",
    "",
    "| ack | connections | callbacks/s | non-200 | p50 ms | p99 ms | p99.9 ms | CPU s / 100k | peak RSS MiB | every 200 in Kafka exactly once (read back after the load) |",
    "|---|---|---|---|---|---|---|---|---|---|",
    rows.strip(),
    "",
    "Ratio to the lower ceiling ("
    + f"{lower:.0f}/s): "
    + ", ".join(f"ack={k} {v / lower:.2f}" for k, v in best.items())
    + f". Ratio to the essential work alone: "
    + ", ".join(f"ack={k} {v / essential['rps']:.2f}" for k, v in best.items())
    + "."
    + (" Ratio to FastAPI: " + ", ".join(f"ack={k} {v / fastapi['rps']:.1f}" for k, v in best.items()) + "." if fastapi else ""),
    "",
    "## End to end (64 connections, paced; a consumer reads the topic during the load)",
    "",
    "From the bridge receiving a callback (`data.received_at`) to a consumer on the same machine reading its event.",
    "",
    "| ack | offered/s | achieved/s | answer p99 ms | end-to-end p50 ms | end-to-end p99 ms | read back |",
    "|---|---|---|---|---|---|---|",
    e2e.strip(),
    "",
    "## Offered load (64 connections, paced by wrk's delay())",
    "",
    "| ack | offered/s | achieved/s | p50 ms | p99 ms | non-200 |",
    "|---|---|---|---|---|---|",
]
lines += [f"| {a} | {o} | {r} | {p50} | {p99} | {n} |" for a, o, r, p50, p99, n in series]
lines += ["", f"![answer latency against offered load]({os.path.basename(out)}.svg)", ""]
open(out + ".md", "w").write("\n".join(lines))

# The plot: p99 answer latency against offered load, one line per ack mode.
W, H, L, B = 640, 400, 60, 50
xs = [float(s[1]) for s in series] or [1]
ys = [float(s[4]) for s in series] or [1]
xmax, ymax = max(xs) * 1.05, max(max(ys) * 1.1, 1)
px = lambda x: L + (W - L - 20) * x / xmax
py = lambda y: H - B - (H - B - 20) * y / ymax
svg = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="12">',
       f'<rect width="{W}" height="{H}" fill="white"/>',
       f'<line x1="{L}" y1="{H-B}" x2="{W-20}" y2="{H-B}" stroke="black"/>',
       f'<line x1="{L}" y1="20" x2="{L}" y2="{H-B}" stroke="black"/>',
       f'<text x="{W/2}" y="{H-10}" text-anchor="middle">offered callbacks/s</text>',
       f'<text x="15" y="{H/2}" transform="rotate(-90 15 {H/2})" text-anchor="middle">p99 answer latency, ms</text>']
for i in range(5):
    x, y = xmax * i / 4, ymax * i / 4
    svg.append(f'<text x="{px(x)}" y="{H-B+15}" text-anchor="middle">{x:.0f}</text>')
    svg.append(f'<text x="{L-5}" y="{py(y)+4}" text-anchor="end">{y:.1f}</text>')
for mode, colour, dy in (("memory", "#1f77b4", 0), ("durable", "#d62728", 16)):
    pts = [(px(float(s[1])), py(float(s[4]))) for s in series if s[0] == mode]
    if pts:
        svg.append(f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{" ".join(f"{x:.1f},{y:.1f}" for x, y in pts)}"/>')
        svg += [f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{colour}"/>' for x, y in pts]
        svg.append(f'<text x="{L+10}" y="{30+dy}" fill="{colour}">ack={mode}</text>')
svg.append("</svg>")
open(out + ".svg", "w").write("\n".join(svg))
