"""The README's chart, from a run's results.json: pyws (as deployed under
gevent) against the peers, messages/s in three cells and idle memory.

    python3 bench/readme_chart.py bench/results/results.json docs/img/benchmarks.png
"""
from __future__ import annotations

import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

SERVERS = [("pyws", "pyws"), ("gevent-websocket", "gevent-websocket"),
           ("flask-sock", "flask-sock"), ("websockets", "websockets"),
           ("aiohttp", "aiohttp"), ("picows", "picows"), ("c-ref", "C (wslay)")]
CELLS = [("echo-32B", "1 connection, 32 B"), ("echo-50c-32B", "50 connections, 32 B"),
         ("pipeline-10c-1KiB", "10 connections x 8\npipelined, 1 KiB")]


def main(results_path: str, out: str) -> None:
    with open(results_path) as f:
        results = json.load(f)
    summary = results["summary"]
    fig, (speed, memory) = plt.subplots(1, 2, figsize=(11, 4.2),
                                        gridspec_kw={"width_ratios": [3, 1.3]})
    width = 0.8 / len(SERVERS)
    for i, (key, label) in enumerate(SERVERS):
        values = [summary.get(cell, {}).get(key, {}).get("median") or 0 for cell, _ in CELLS]
        speed.bar([c + i * width for c in range(len(CELLS))], [v / 1000 for v in values],
                  width, label=label)
    speed.set_xticks([c + width * (len(SERVERS) - 1) / 2 for c in range(len(CELLS))],
                     [label for _, label in CELLS])
    speed.set_ylabel("thousand messages/s (echo)")
    speed.legend(fontsize=8, ncol=2)
    speed.set_title("Echo throughput, median of the rounds")
    idle = summary.get("idle", {})
    names = [label for key, label in SERVERS if idle.get(key, {}).get("median")]
    kib = [idle[key]["median"] for key, _ in SERVERS if idle.get(key, {}).get("median")]
    memory.barh(names[::-1], kib[::-1], color="tab:gray")
    memory.set_xlabel("KiB per idle connection")
    memory.set_title("Memory, 2,000 idle connections")
    fig.suptitle(f"{results['started'][:10]}, {results['machine'].get('cpu', '')} "
                 f"(2 cores; server and load generator on their own core)", fontsize=9)
    fig.tight_layout()
    fig.savefig(out, dpi=110)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
