"""Draws docs/perf.png from the end-to-end bench's JSON (cargo bench --bench e2e -- --json).

Left: CPU per frame of the service beside both floors (typed and bare) for each message type and
format, annotated with the ratio to the bare floor.
Middle: the sustained-throughput ladder, counted against offered frames per second.
Right (when the report has it): the scale case, /metrics at the whole of Upbit (800 codes x
ticker, trade, orderbook): scrape p50 and p99, CPU per scrape and RSS, against #17's targets.
"""

import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main(source: str, target: str) -> None:
    with open(source, encoding="utf-8") as f:
        report = json.load(f)
    rows = report["cpu_per_frame"]
    steps = report["sustained"]["steps"]

    scale = report.get("scale") or []
    if scale:
        fig, (cpu, rate, big) = plt.subplots(
            1, 3, figsize=(17, 4.8), gridspec_kw={"width_ratios": [3, 2, 2]}
        )
    else:
        fig, (cpu, rate) = plt.subplots(1, 2, figsize=(12, 4.5), gridspec_kw={"width_ratios": [3, 2]})

    labels = [f"{r['type']}\n{r['format']}" for r in rows]
    xs = range(len(rows))
    width = 0.27
    cpu.bar([x - width for x in xs], [r["service_cpu_us_per_frame"] for r in rows], width,
            label="upbit-exporter (decode + every metric)", color="#2b6cb0")
    cpu.bar(list(xs), [r["floor_cpu_us_per_frame"] for r in rows], width,
            label="typed floor (awc read + serde into the full struct)", color="#a0aec0")
    cpu.bar([x + width for x in xs], [r["bare_floor_cpu_us_per_frame"] for r in rows], width,
            label="bare floor (awc read + 4 borrowed fields)", color="#e2e8f0", edgecolor="#a0aec0")
    for x, r in zip(xs, rows):
        cpu.annotate(f"{r['ratio_to_bare_floor']:.2f}x", (x - width, r["service_cpu_us_per_frame"]),
                     ha="center", va="bottom", fontsize=8)
    cpu.set_xticks(list(xs))
    cpu.set_xticklabels(labels, fontsize=8)
    cpu.set_ylabel("CPU µs per frame (user + sys)")
    cpu.set_xlabel("ratio above each service bar: to the bare floor")
    cpu.set_title(f"CPU per frame at {rows[0]['rate'] / 1000:.0f}k frames/s")
    cpu.legend(fontsize=8, loc="upper left")

    offered = [s["offered"] / 1000 for s in steps]
    counted = [s["counted_per_sec"] / 1000 for s in steps]
    colors = ["#2f855a" if s["dropped"] == 0 else "#c53030" for s in steps]
    rate.plot(offered, offered, linestyle="--", color="#a0aec0", label="offered")
    rate.scatter(offered, counted, c=colors, zorder=3, label="counted (red: with drops)")
    rate.plot(offered, counted, color="#2b6cb0")
    floor = report["sustained"].get("floor_flood_frames_per_sec")
    if floor:
        rate.axhline(floor / 1000, color="#718096", linestyle=":", label="typed floor, unpaced flood")
    bare = report["sustained"].get("bare_floor_flood_frames_per_sec")
    if bare:
        rate.axhline(bare / 1000, color="#4a5568", linestyle="-.", label="bare floor, unpaced flood")
    flood = report["sustained"].get("flood_frames_per_sec")
    if flood:
        rate.axhline(flood / 1000, color="#2b6cb0", linestyle=":", label="service, unpaced flood")
    rate.set_xlabel("offered k frames/s (ticker DEFAULT, 2 s per step)")
    rate.set_ylabel("counted k frames/s")
    rate.set_title("Sustained throughput")
    rate.legend(fontsize=8, loc="lower right")

    if scale:
        draw_scale(big, scale)

    fig.suptitle(f"upbit-exporter end-to-end, {report['machine']}", fontsize=10)
    fig.tight_layout()
    fig.savefig(target, dpi=110)
    print(f"chart written to {target}")


def draw_scale(ax, runs) -> None:
    """Scrape p50/p99 (ms), CPU per scrape (ms) and RSS (MiB) per depth-band setting."""
    figures = [("p50 ms", "p50_ms", 15), ("p99 ms", "p99_ms", 40), ("CPU ms\n/scrape", "cpu_ms_per_scrape", None),
               ("RSS MiB", "rss_mib", 40 * 1000**2 / 1024**2)]
    width = 0.8 / len(runs)
    colors = ["#2b6cb0", "#90cdf4", "#2c5282"]
    for i, run in enumerate(runs):
        xs = [j + (i - (len(runs) - 1) / 2) * width for j in range(len(figures))]
        values = [run[key] for _, key, _ in figures]
        ax.bar(xs, values, width, color=colors[i % len(colors)],
               label=f"bands {run['depth_bands_bps']}: {run['series']:,} series")
        for x, v in zip(xs, values):
            ax.annotate(f"{v:.1f}", (x, v), ha="center", va="bottom", fontsize=7)
    for j, (_, _, target) in enumerate(figures):
        if target:
            ax.hlines(target, j - 0.45, j + 0.45, colors="#c53030", linestyles="--")
    top = max([run[key] for run in runs for _, key, _ in figures] + [t for _, _, t in figures if t])
    ax.set_ylim(0, top * 1.12)
    ax.set_xticks(range(len(figures)))
    ax.set_xticklabels([label for label, _, _ in figures], fontsize=8)
    ax.set_title(f"/metrics at {runs[0]['codes']} codes x 3 types (red: target)")
    ax.legend(fontsize=8, loc="center left")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: bench_chart.py E2E_JSON OUTPUT_PNG")
    main(sys.argv[1], sys.argv[2])
