"""Plots of evaluation results (PNG files, matplotlib without a display)."""

from __future__ import annotations

from pathlib import Path


def pyplot():
    """matplotlib.pyplot on the Agg backend (no display), imported on first use."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def power_of_two_ticks(ax) -> None:
    """A log2 x axis labelled with plain numbers (k = 1, 2, 4, ...)."""
    import matplotlib.ticker

    ax.set_xscale("log", base=2)
    ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda x, _: f"{x:g}"))


def plot_run_passk(metrics: dict, title: str, out: Path) -> None:
    """One evaluation's pass@k and maj@k against k (log scale), one pair of lines per task."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    for task, m in metrics.items():
        for kind, style in (("pass", "-o"), ("maj", "--s")):
            ks = sorted(int(k.split("@")[1]) for k in m if k.startswith(f"{kind}@"))
            if ks:
                marks = [i for i, k in enumerate(ks) if k & (k - 1) == 0 or k == ks[-1]]
                ax.plot(ks, [m[f"{kind}@{k}"] for k in ks], style, markersize=3, markevery=marks,
                        label=f"{kind}@k ({task})")  # fmt: skip
    power_of_two_ticks(ax)
    ax.set(xlabel="k (samples)", ylabel="accuracy", title=title[-60:], ylim=(0, 1.02))
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)
