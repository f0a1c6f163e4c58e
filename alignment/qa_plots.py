"""The report's plots: score histograms and threshold sweeps, as PNG files drawn by matplotlib.

Figures are built with matplotlib's object API on the Agg canvas, never through ``pyplot``: no GUI
backend is touched, no global figure state leaks between reports, and it works on a headless CI box.
PNG rather than SVG because a PNG looks the same in every browser and the browser test can check that
it decoded (``naturalWidth > 0``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from matplotlib.ticker import MaxNLocator

COLOURS = {"clip": "#3b6ea8", "clap": "#b5632a"}
DPI = 100


def histogram_png(path: Path, edges: Sequence[float], counts: Sequence[int], *, judge: str,
                  threshold: float | None, unit: str) -> Path:
    """Bars of the score histogram, with the acceptance threshold as a labelled vertical line."""
    figure, axes = _figure(6.4, 2.6)
    widths = [high - low for low, high in zip(edges[:-1], edges[1:])]
    axes.bar(edges[:-1], counts, width=widths, align="edge", color=COLOURS.get(judge, "#555"),
             edgecolor="white", linewidth=0.4)
    if threshold is not None:
        axes.axvline(threshold, color="#c0392b", linewidth=1.5, linestyle="--")
        below = sum(c for low, c in zip(edges[:-1], counts) if low < threshold)
        axes.annotate(f"threshold {threshold:g}", (threshold, 1), xycoords=("data", "axes fraction"),
                      xytext=(4, -12), textcoords="offset points", color="#c0392b", fontsize=8)
        axes.set_title(f"{judge.upper()}Score per pair ({sum(counts)} scored, about {below} below the threshold)",
                       fontsize=9, loc="left")
    else:
        axes.set_title(f"{judge.upper()}Score per pair ({sum(counts)} scored)", fontsize=9, loc="left")
    axes.set_xlim(edges[0], edges[-1])
    axes.yaxis.set_major_locator(MaxNLocator(integer=True))  # counts: no 0.2-pair ticks on small datasets
    axes.set_xlabel(unit, fontsize=8)
    axes.set_ylabel("pairs", fontsize=8)
    return _save(figure, path)


def sweep_png(path: Path, sweeps: Mapping[str, tuple[Sequence[float], Sequence[float]]],
              marks: Mapping[str, tuple[float, float]]) -> Path:
    """The share of pairs kept as the threshold rises, one line per judge.

    Args:
        path: the PNG to write.
        sweeps: per judge, the thresholds tried and the share kept at each.
        marks: per judge, the chosen threshold and the share it keeps (computed exactly, not read off
            the sampled sweep).
    """
    figure, axes = _figure(6.4, 2.6)
    for judge, (values, kept) in sweeps.items():
        colour = COLOURS.get(judge, "#555")
        axes.plot(values, [100 * k for k in kept], color=colour, linewidth=1.6, label=f"{judge.upper()}Score")
        if judge in marks:
            threshold, at = marks[judge]
            axes.axvline(threshold, color="#c0392b", linewidth=1.2, linestyle="--")
            axes.plot([threshold], [100 * at], "o", color=colour)
            axes.annotate(f"{100 * at:.1f}% kept at {threshold:g}", (threshold, 100 * at), xytext=(6, 4),
                          textcoords="offset points", fontsize=8, color=colour)
    axes.set_xlim(0, 100)
    axes.set_ylim(0, 102)
    axes.set_xlabel("threshold (score = 100·max(cosine, 0))", fontsize=8)
    axes.set_ylabel("% of pairs kept", fontsize=8)
    axes.grid(alpha=0.3)
    if len(sweeps) > 1:
        axes.legend(fontsize=8)
    return _save(figure, path)


def _figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=DPI)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    axes.tick_params(labelsize=8)
    for side in ("top", "right"):
        axes.spines[side].set_visible(False)
    return figure, axes


def _save(figure, path: Path) -> Path:
    figure.tight_layout()
    # Metadata off: matplotlib stamps its version and the date, which would make re-runs differ.
    figure.savefig(path, format="png", metadata={"Software": None})
    return path
