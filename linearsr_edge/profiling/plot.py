"""``linearsr-profile --plot``: the median run's timeline above the per-component breakdown (matplotlib)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from linearsr_edge.pipeline.session import describe_settings
from linearsr_edge.profiling.measure import ProfileReport


def plot_report(report: ProfileReport, path: str | Path) -> Any:
    """A PNG: the median run's timeline (every component call, steps numbered) above the per-component
    time per image with the host loop beside it. Needs matplotlib (``pip install 'linearsr-edge[plot]'``)."""
    from linearsr_edge.errors import BackendUnavailableError

    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise BackendUnavailableError("--plot needs matplotlib: pip install 'linearsr-edge[plot]'") from None
    names = list(report.components)
    cmap = plt.get_cmap("tab10")
    colour = {n: cmap(i % 10) for i, n in enumerate(names)}
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(10, 6), gridspec_kw={"height_ratios": [0.6, 1.4]})
    step = 0
    for g in report.gantt:
        top.barh(0, g["ms"], left=g["start_ms"], color=colour[g["label"]], edgecolor="white", linewidth=0.5)
        if g["label"].startswith("expert"):
            label = f"step {step}" if g["ms"] > 0.06 * report.image["p50_ms"] else str(step)
            top.text(g["start_ms"] + g["ms"] / 2, 0, label, ha="center", va="center", fontsize=8, color="white")
            step += 1
    top.set_yticks([])
    top.set_xlabel("ms since the call started (the median run; gaps: the host loop outside sessions)")
    top.set_title(
        f"{report.target}: {report.output_hw[1]}x{report.output_hw[0]} output, {report.steps} steps, "
        f"p50 {report.image['p50_ms']:.1f} ms, {describe_settings(report.settings)}",
        fontsize=10,
    )
    handles = [plt.Rectangle((0, 0), 1, 1, color=colour[n]) for n in names]
    top.legend(handles, names, ncol=min(6, len(names)), fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.45))
    labels = [*names, "outside sessions", "opening sessions"]
    values = [report.components[n]["ms_per_image"] for n in names] + [report.outside_ms, report.open_ms]
    colours = [colour[n] for n in names] + ["0.6", "0.8"]
    y = np.arange(len(labels))
    bottom.barh(y, values, color=colours)
    for yi, v in zip(y, values, strict=True):
        bottom.text(v, yi, f" {v:.1f}", va="center", fontsize=8)
    bottom.set_yticks(y, labels, fontsize=9)
    bottom.invert_yaxis()
    bottom.set_xlabel("ms per image (sum of calls, median over runs for the host)")
    bottom.set_xlim(0, max(values) * 1.15 if max(values) > 0 else 1)
    isa = " ".join(report.machine.get("isa", [])) or "unknown ISA"
    fig.suptitle(f"{report.bundle} on {report.machine.get('cpu')} ({isa})", fontsize=9, color="0.3")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return fig
