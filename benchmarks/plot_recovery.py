"""Draw docs/recovery.png from bench_recovery's series (runs in the matplotlib-only env).

Usage: python plot_recovery.py SERIES.json OUT.png
"""

from __future__ import annotations

import json
import sys
from typing import Any, Dict, List

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt

STYLE = {
    # the patched lines sit under 3.10.11's: where they coincide, a blue line with black dashes reads "same"
    "3.10.11 upstream": {"color": "#111111", "linestyle": (0, (4, 3)), "linewidth": 1.6, "zorder": 6},
    "3.10.10 patched": {"color": "#1f77b4", "linestyle": "-", "linewidth": 3.2, "zorder": 4},
    "3.9.5 patched": {"color": "#2ca02c", "linestyle": "-", "linewidth": 1.8, "zorder": 5},
    "3.10.10 unpatched": {"color": "#d62728", "linestyle": "-", "linewidth": 3.0, "zorder": 3},
}


def main(argv: List[str]) -> None:
    source, out = argv
    with open(source) as fh:
        data: Dict[str, Any] = json.load(fh)
    config = data["config"]
    runs: Dict[str, List[List[float]]] = data["runs"]
    late: Dict[str, float] = data["late_rate"]
    wedged: Dict[str, int] = data["wedged_runs"]
    duration = len(next(iter(runs.values()))[0])

    fig, ax = plt.subplots(figsize=(10, 6), dpi=110)
    ax.axvspan(
        0,
        config["slow_period"],
        color="#f4b183",
        alpha=0.45,
        lw=0,
        label=f"slow period: every answer takes {config['slow_delay']:g} s",
    )
    ax.axvline(config["late_after"], color="#888888", linestyle=":", linewidth=1.2)
    ax.text(
        config["late_after"] + 0.1,
        0.98,
        "late rate counted from here",
        transform=ax.get_xaxis_transform(),
        va="top",
        fontsize=9,
        color="#555555",
    )
    top = 0.0
    for label, series in runs.items():
        n = len(series)
        note = f"late: {late[label]:.0f} req/s" + (f", wedged in {wedged[label]} of {n} runs" if wedged[label] else "")
        for i, values in enumerate(series):
            xs = list(range(duration + 1))
            ys = [*values, values[-1]]  # step plot: each second drawn across its interval
            top = max(top, max(values))
            ax.step(
                xs,
                ys,
                where="post",
                label=f"{label}  ({note})" if i == 0 else None,
                alpha=1.0 if n == 1 else 0.85,
                **STYLE.get(label, {}),
            )
    ax.set_xlim(0, duration)
    ax.set_ylim(-1, top * 1.12 + 2)
    ax.set_xlabel("seconds since the first request")
    ax.set_ylabel("successful requests per second")
    fig.suptitle(
        "aiohttp#9670: after a burst of timeouts the unpatched connector can wedge; patched recovers like 3.10.11",
        fontsize=12,
    )
    rounds = max(len(series) for series in runs.values())
    ax.set_title(
        f"TCPConnector(limit={config['limit']}), {config['workers']} workers, total timeout "
        f"{config['timeout']:g} s; after the slow period the loopback server alternates\n"
        f"instant and {config['slow_delay']:g} s answers.  One line per run, {rounds} runs per release.",
        fontsize=9,
        color="#444444",
    )
    ax.grid(True, alpha=0.3)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.11), ncol=2, fontsize=9, frameon=False)
    fig.tight_layout()
    fig.savefig(out)


if __name__ == "__main__":
    main(sys.argv[1:])
