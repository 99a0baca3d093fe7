"""Plots a bench/peer.sh results table: callbacks/s and p99 against connections, one
line per server. `python3 bench/plot_connections.py RESULTS.md` writes RESULTS.svg."""

import math
import sys

COLOURS = ["#888888", "#1f77b4", "#d62728", "#2ca02c", "#9467bd"]


def rows(path):
    series = {}
    for line in open(path):
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        # Rows at an offered rate (not saturating) are not points of these curves.
        if len(cells) < 7 or not cells[1].isdigit() or "offered" in cells[0]:
            continue
        name, connections, rps, p99 = cells[0], int(cells[1]), float(cells[2]), float(cells[6])
        series.setdefault(name, []).append((connections, rps, p99))
    return series


def panel(series, x0, title, value, log_y):
    width, height, left, bottom = 560, 320, 70, 40
    xs = sorted({c for points in series.values() for c, _, _ in points})
    ys = [value(p) for points in series.values() for p in points]
    top = max(ys) * 1.1
    low = min(ys) / 1.5 if log_y else 0

    def px(c):
        return x0 + left + (math.log2(c) - math.log2(xs[0])) / max(math.log2(xs[-1] / xs[0]), 1) * (width - left - 20)

    def py(v):
        if log_y:
            return 20 + (1 - (math.log10(v) - math.log10(low)) / (math.log10(top) - math.log10(low))) * (height - bottom - 20)
        return 20 + (1 - v / top) * (height - bottom - 20)

    out = [f'<text x="{x0 + width / 2}" y="14" text-anchor="middle" font-size="13">{title}</text>',
           f'<line x1="{x0 + left}" y1="{height - bottom}" x2="{x0 + width - 20}" y2="{height - bottom}" stroke="black"/>',
           f'<line x1="{x0 + left}" y1="20" x2="{x0 + left}" y2="{height - bottom}" stroke="black"/>']
    for c in xs:
        out.append(f'<text x="{px(c)}" y="{height - bottom + 16}" text-anchor="middle" font-size="11">{c}</text>')
    out.append(f'<text x="{x0 + width / 2}" y="{height - 6}" text-anchor="middle" font-size="11">connections</text>')
    ticks = [low * (top / low) ** (i / 4) for i in range(5)] if log_y else [top * i / 4 for i in range(5)]
    for t in ticks:
        out.append(f'<text x="{x0 + left - 6}" y="{py(t) + 4}" text-anchor="end" font-size="10">{t:,.0f}</text>')
    for i, (name, points) in enumerate(series.items()):
        colour = COLOURS[i % len(COLOURS)]
        points = sorted(points)
        path = " ".join(f"{px(q[0]):.1f},{py(value(q)):.1f}" for q in points)
        out.append(f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{path}"/>')
    return out


def main():
    path = sys.argv[1]
    series = rows(path)
    svg = ['<svg xmlns="http://www.w3.org/2000/svg" width="1140" height="380" font-family="sans-serif">']
    svg += panel(series, 0, "callbacks/s", lambda p: p[1], False)
    svg += panel(series, 570, "p99 latency, ms (log scale)", lambda p: p[2], True)
    for i, name in enumerate(series):
        colour = COLOURS[i % len(COLOURS)]
        svg.append(f'<rect x="{20 + i * 225}" y="352" width="12" height="12" fill="{colour}"/>')
        svg.append(f'<text x="{36 + i * 225}" y="362" font-size="11">{name}</text>')
    svg.append("</svg>")
    out = path[: -len(".md")] + ".svg"
    open(out, "w").write("\n".join(svg) + "\n")
    print(f"wrote {out}")


main()
