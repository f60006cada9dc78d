"""Charts as SVG text, drawn from stored check results. The PDF reports and the console
draw with these same functions, so a chart reads the same wherever it is seen.

Text stays text (`svg.fonttype: none`): it is searchable in the PDF and sharp at any zoom.
Every chart states its threshold in a legend, not only as a colour.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import matplotlib
from matplotlib.figure import Figure

PASS_COLOUR = "#2b6cb0"
FAIL_COLOUR = "#c53030"
MUTED = "#a0aec0"
STYLE: dict[str, Any] = {
    "svg.fonttype": "none",
    "svg.hashsalt": "governance",  # the same data gives the same bytes
    "font.family": "DejaVu Sans",
    "font.size": 8,
    "axes.spines.top": False,
    "axes.spines.right": False,
}
DISTANCE_TESTS = {"wasserstein", "jensenshannon"}
# Set once for the process: rc_context would change global state per chart, which is not
# safe in the server's worker threads; Figure without pyplot keeps no global state.
matplotlib.rcParams.update(STYLE)  # type: ignore[arg-type]
WIDTH = 6.3  # inches: the text width of an A4 page with 2 cm margins


def fairness_groups(grouping: dict[str, Any], title: str) -> str:
    """Selection rate per group, with the four-fifths line at 0.8 × the highest rate; groups
    too small to compare are drawn grey and labelled."""
    groups = grouping["groups"]
    labels = [str(g["label"]) for g in groups]
    rates = [g["selection_rate"] or 0.0 for g in groups]
    kept_rates = [g["selection_rate"] for g in groups if not g["excluded"]]
    top = max((r for r in kept_rates if r is not None), default=0.0)
    colours = [
        MUTED
        if g["excluded"]
        else (FAIL_COLOUR if (g["impact_ratio"] or 0.0) < 0.8 else PASS_COLOUR)
        for g in groups
    ]
    with _figure(len(groups)) as (figure, axes):
        axes.barh(labels, rates, color=colours)
        if top > 0:
            axes.axvline(
                0.8 * top,
                color=FAIL_COLOUR,
                linestyle="--",
                linewidth=1,
                label=f"four-fifths line: 0.8 × highest rate = {0.8 * top:.3f}",
            )
        for index, group in enumerate(groups):
            note = " (too few rows: not compared)" if group["excluded"] else ""
            axes.text(rates[index], index, f" {rates[index]:.3f}{note}", va="center")
        axes.invert_yaxis()
        axes.set_xlabel("selection rate (share predicted positive)")
        axes.set_title(title, loc="left")
        axes.set_xlim(0, max([*rates, top]) * 1.35 or 1.0)
        _legend(axes)
        return _svg(figure)


def error_rates(grouping: dict[str, Any], title: str) -> str:
    """True and false positive rates per group: what equalized odds compares."""
    groups = [g for g in grouping["groups"] if not g["excluded"]]
    labels = [str(g["label"]) for g in groups]
    with _figure(len(groups), rows_per_group=2) as (figure, axes):
        positions = range(len(groups))
        axes.barh(
            [p - 0.2 for p in positions],
            [g["true_positive_rate"] or 0 for g in groups],
            height=0.4,
            color=PASS_COLOUR,
            label="true positive rate",
        )
        axes.barh(
            [p + 0.2 for p in positions],
            [g["false_positive_rate"] or 0 for g in groups],
            height=0.4,
            color=MUTED,
            label="false positive rate",
        )
        axes.set_yticks(list(positions), labels)
        axes.invert_yaxis()
        axes.set_xlim(0, 1)
        axes.set_xlabel("rate")
        axes.set_title(title, loc="left")
        _legend(axes)
        return _svg(figure)


def shap_ranking(ranking: list[dict[str, Any]], prohibited: set[str], top_k: int | None) -> str:
    """Mean |SHAP| per feature, most influential first; prohibited features in red, and the
    top-k cut-off drawn where a rule sets one."""
    shown = ranking[:15]
    labels = [
        f"{e['feature']} (prohibited)" if e["feature"] in prohibited else e["feature"]
        for e in shown
    ]
    values = [e["mean_abs_shap"] for e in shown]
    colours = [FAIL_COLOUR if e["feature"] in prohibited else PASS_COLOUR for e in shown]
    with _figure(len(shown)) as (figure, axes):
        axes.barh(labels, values, color=colours)
        if top_k is not None and top_k < len(shown):
            axes.axhline(
                top_k - 0.5,
                color=FAIL_COLOUR,
                linestyle="--",
                linewidth=1,
                label=f"top-{top_k} cut-off",
            )
            _legend(axes)
        axes.invert_yaxis()
        axes.set_xlabel("mean |SHAP value|")
        axes.set_title("Feature influence (SHAP)", loc="left")
        return _svg(figure)


def drift_columns(columns: list[dict[str, Any]]) -> str:
    """Per column: the test statistic against its threshold, as a ratio so columns with
    different tests share one axis. For p-value tests drift is below the threshold."""
    shown = columns[:25]
    labels = [f"{c['column']} ({c['stattest']})" for c in shown]
    values = [_drift_score(c) for c in shown]
    colours = [FAIL_COLOUR if c["drifted"] else PASS_COLOUR for c in shown]
    with _figure(len(shown)) as (figure, axes):
        axes.barh(labels, values, color=colours)
        axes.axvline(
            1.0, color=FAIL_COLOUR, linestyle="--", linewidth=1, label="threshold: ≥ 1 means drift"
        )
        axes.invert_yaxis()
        axes.set_xlabel("drift score (statistic relative to its threshold)")
        axes.set_title("Drift per column", loc="left")
        _legend(axes)
        return _svg(figure)


def performance_vs_champion(metrics: dict[str, Any], names: list[str]) -> str:
    """The candidate's metrics beside the champion's, where there is one."""
    champion = metrics.get("champion") or {}
    shown = [n for n in names if isinstance(metrics.get(n), int | float)]
    with _figure(len(shown), rows_per_group=2 if champion else 1) as (figure, axes):
        positions = range(len(shown))
        offset = 0.2 if champion else 0.0
        axes.barh(
            [p - offset for p in positions],
            [metrics[n] for n in shown],
            height=0.4,
            color=PASS_COLOUR,
            label="candidate",
        )
        if champion:
            axes.barh(
                [p + offset for p in positions],
                [champion.get(n, 0) for n in shown],
                height=0.4,
                color=MUTED,
                label="champion",
            )
        axes.set_yticks(list(positions), shown)
        axes.invert_yaxis()
        axes.set_xlim(0, 1)
        axes.set_title("Performance" + (" against the champion" if champion else ""), loc="left")
        _legend(axes)
        return _svg(figure)


def impact_ratios(categories: list[dict[str, Any]], title: str) -> str:
    """LL144 impact ratios per category, with the four-fifths line for reference only."""
    labels = [
        f"{c['category']} (excluded: under 2%)" if c["excluded"] else c["category"]
        for c in categories
    ]
    values = [c["impact_ratio"] if c["impact_ratio"] is not None else 0.0 for c in categories]
    colours = [
        MUTED if c["excluded"] else (FAIL_COLOUR if c["four_fifths_flag"] else PASS_COLOUR)
        for c in categories
    ]
    with _figure(len(categories)) as (figure, axes):
        axes.barh(labels, values, color=colours)
        axes.axvline(
            0.8,
            color=FAIL_COLOUR,
            linestyle="--",
            linewidth=1,
            label="0.8: four-fifths rule (29 CFR 1607.4(D)), for reference",
        )
        for index, category in enumerate(categories):
            text = "n/a" if category["impact_ratio"] is None else f"{values[index]:.3f}"
            axes.text(values[index], index, f" {text}", va="center")
        axes.invert_yaxis()
        axes.set_xlim(0, 1.25)
        axes.set_xlabel("impact ratio (category rate ÷ highest category rate)")
        axes.set_title(title, loc="left")
        _legend(axes)
        return _svg(figure)


def _drift_score(column: dict[str, Any]) -> float:
    """1 at the threshold, above 1 for drift: distance ÷ threshold for distances, and
    threshold ÷ p for p-value tests (a small p means drift). Capped at 3 to stay readable."""
    statistic, threshold = column["statistic"], column["threshold"]
    if statistic is None or not threshold:
        return 0.0
    if column["stattest"] in DISTANCE_TESTS:
        return float(min(statistic / threshold, 3.0))
    return float(min(threshold / max(statistic, 1e-12), 3.0))


def _legend(axes: Any) -> None:
    """Below the plot, so it never hides a bar."""
    axes.legend(loc="upper center", bbox_to_anchor=(0.5, -0.28), ncol=2, frameon=False)


@contextmanager
def _figure(bars: int, rows_per_group: int = 1) -> Iterator[tuple[Figure, Any]]:
    height = 1.0 + 0.22 * max(bars, 1) * rows_per_group
    figure = Figure(figsize=(WIDTH, min(height, 8.5)))
    yield figure, figure.subplots()


def _svg(figure: Figure) -> str:
    buffer = io.StringIO()
    figure.savefig(
        buffer, format="svg", bbox_inches="tight", metadata={"Date": None, "Creator": None}
    )
    text = buffer.getvalue()
    return text[text.index("<svg") :]  # inline in HTML: no XML prolog or doctype
