"""Draw the throughput plots (runs in ``benchmarks/.venvs/tools``, matplotlib).

Reads ``{"sweep": {"system": {"<in flight>": per_s, ...}, ...}, "processes": {"system":
{"<worker processes>": per_s, ...}, ...}}`` as JSON on stdin and writes a small PNG to the path
given as the only argument: throughput vs. instances in flight, and, when there are
``processes`` series, HelloCities/s vs. worker processes beside it.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt


def _series(ax: Any, series: dict[str, dict[str, float]]) -> None:
    for name, points in series.items():
        levels = sorted(points, key=int)
        style = "-o" if name.startswith("ostinato") else "--s"
        ax.plot([int(x) for x in levels], [points[x] for x in levels], style, label=name)
    ax.grid(True, which="both", alpha=0.3)


def main() -> int:
    """Read the series, draw them, save the PNG."""
    data: dict[str, dict[str, dict[str, float]]] = json.load(sys.stdin)
    processes = data.get("processes") or {}
    fig, axes = plt.subplots(
        1, 2 if processes else 1, figsize=(12 if processes else 8, 4.2), dpi=100, squeeze=False
    )
    ax = axes[0][0]
    _series(ax, data.get("sweep", {}))
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("HelloCities instances in flight")
    ax.set_ylabel("orchestrations / s")
    ax.set_title("Throughput vs. concurrency (3 sequential activities)", fontsize=10)
    ax.legend(fontsize=8, loc="lower right")
    if processes:
        ax = axes[0][1]
        _series(ax, processes)
        counts = sorted({int(c) for points in processes.values() for c in points})
        ax.set_xticks(counts)
        ax.set_ylim(bottom=0)
        ax.set_xlabel("worker processes")
        ax.set_ylabel("HelloCities / s")
        ax.set_title("Scale-out: worker processes on one task hub", fontsize=10)
        ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(sys.argv[1], dpi=100)
    return 0


if __name__ == "__main__":
    sys.exit(main())
