"""Draw the throughput-vs-concurrency plot (runs in ``benchmarks/.venvs/tools``, matplotlib).

Reads ``{"system": {"<in flight>": per_s, ...}, ...}`` as JSON on stdin and writes a small PNG
to the path given as the only argument.
"""

from __future__ import annotations

import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt


def main() -> int:
    """Read the series, draw them on log-log axes, save the PNG."""
    series: dict[str, dict[str, float]] = json.load(sys.stdin)
    fig, ax = plt.subplots(figsize=(8, 4.2), dpi=100)
    for name, points in series.items():
        levels = sorted(points, key=int)
        style = "-o" if name.startswith("ostinato") else "--s"
        ax.plot([int(x) for x in levels], [points[x] for x in levels], style, label=name)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("HelloCities instances in flight")
    ax.set_ylabel("orchestrations / s")
    ax.set_title("Throughput vs. concurrency (3 sequential activities)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    fig.savefig(sys.argv[1], dpi=100)
    return 0


if __name__ == "__main__":
    sys.exit(main())
