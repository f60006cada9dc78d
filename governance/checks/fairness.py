"""Fairness with fairlearn: group metrics and disparities over sensitive features.

fairlearn's `MetricFrame` walks every row in pandas, which costs ~26 s on a million rows.
All the metrics we report are functions of one 2×2 confusion table per group, so we count
those tables with numpy (`bincount`) and hand fairlearn the compressed table — one row per
(group, truth, prediction) with its count as `sample_weight`. fairlearn computes every
figure by its own definitions, on at most 4 × groups rows.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from fairlearn import metrics as flm
from sklearn.metrics import accuracy_score

from governance.checks import (
    Batch,
    CheckInputs,
    Exactness,
    Scope,
    library_versions,
    rule_severity,
    run_check,
)
from governance.domain.errors import InputError
from governance.domain.judging import fairness_groupings, judge_fairness, worst_grouping
from governance.domain.policy import FairnessCheck, FairnessRule, Severity
from governance.domain.results import CheckResult, RuleOutcome, status_of

MISSING = "(missing)"
FOUR_FIFTHS = 0.8
_DISPARITIES = {
    "demographic_parity_difference": flm.demographic_parity_difference,
    "demographic_parity_ratio": flm.demographic_parity_ratio,
    "equalized_odds_difference": flm.equalized_odds_difference,
    "equalized_odds_ratio": flm.equalized_odds_ratio,
    "equal_opportunity_difference": flm.equal_opportunity_difference,
    "equal_opportunity_ratio": flm.equal_opportunity_ratio,
}
_GROUP_METRICS = {
    "selection_rate": flm.selection_rate,
    "true_positive_rate": flm.true_positive_rate,
    "false_positive_rate": flm.false_positive_rate,
    "accuracy": accuracy_score,
}


@dataclass(frozen=True)
class Grouping:
    """Confusion counts per group for one grouping (one feature, or an intersection)."""

    features: tuple[str, ...]
    labels: pd.DataFrame  # one row per group: the value of each feature
    counts: np.ndarray  # (groups, 4): cells tn, fp, fn, tp indexed by 2 * truth + prediction
    kept: np.ndarray  # groups at least minGroupSize (or all, when small groups are an error)

    @property
    def name(self) -> str:
        return " × ".join(self.features)

    def label(self, index: int) -> str:
        row = self.labels.iloc[index]
        return ", ".join(f"{feature}={row[feature]}" for feature in self.features)

    def compressed(self) -> tuple[np.ndarray, np.ndarray, pd.DataFrame, np.ndarray]:
        """The kept groups' counts as weighted rows: (y_true, y_pred, groups, weight)."""
        groups, cells = np.nonzero(self.counts * self.kept[:, None])
        return (
            cells // 2,
            cells % 2,
            self.labels.iloc[groups].reset_index(drop=True),
            self.counts[groups, cells],
        )


def run(spec: FairnessCheck, inputs: CheckInputs) -> CheckResult:
    """All rows in memory: one batch."""
    return run_check(spec, inputs)


class Aggregate:
    """Confusion counts per group, per grouping: they add up exactly over batches, and every
    figure is computed by fairlearn from the merged table."""

    def __init__(self, spec: FairnessCheck, scope: Scope) -> None:
        _validate(spec, scope)
        self.spec = spec
        self.groupings = fairness_groupings(spec)

    def partial(self, batch: Batch) -> list[pd.DataFrame]:
        cell = 2 * batch.y_true.astype(np.int64) + batch.y_pred.astype(np.int64)
        return [_cells(batch.data, features, cell) for features in self.groupings]

    def merge(self, first: list[pd.DataFrame], second: list[pd.DataFrame]) -> list[pd.DataFrame]:
        return [
            one.add(other, fill_value=0).astype(np.int64)
            for one, other in zip(first, second, strict=True)
        ]

    def finalize(self, state: list[pd.DataFrame]) -> CheckResult:
        spec = self.spec
        groupings = [
            _grouping(spec, features, table)
            for features, table in zip(self.groupings, state, strict=True)
        ]
        reports = [_report(grouping) for grouping in groupings]
        outcomes = [
            _judge(rule, spec, groupings, reports, index) for index, rule in enumerate(spec.rules)
        ]
        flagged = [
            group["label"]
            for report in reports
            for group in report["groups"]
            if group["impact_ratio"] is not None and group["impact_ratio"] < FOUR_FIFTHS
        ]
        return CheckResult(
            id=spec.id,
            type=spec.type,
            status=status_of(outcomes),
            summary=_summary(outcomes, reports),
            rules=outcomes,
            metrics={
                "groupings": reports,
                "min_group_size": spec.min_group_size,
                "four_fifths_flagged": flagged,
                "four_fifths_basis": (
                    "29 CFR 1607.4(D) (EEOC Uniform Guidelines): a selection rate under "
                    "four-fifths of the highest group's is generally regarded as evidence of "
                    "adverse impact. Reported for information; NYC Local Law 144 sets no "
                    "threshold."
                ),
                "statistics": [
                    Exactness("confusion counts per group", "exact").as_json(),
                ],
            },
            library_versions=library_versions("fairlearn", "scikit-learn", "numpy"),
        )


def _validate(spec: FairnessCheck, scope: Scope) -> None:
    subject = f"fairness check '{spec.id}'"
    if scope.task != "classification":
        raise InputError(subject, "fairness metrics need a classifier", "remove this check")
    absent = [f for f in spec.sensitive_features if f not in scope.columns]
    if absent:
        raise InputError(
            subject,
            f"sensitive column(s) {absent} are not in the data "
            f"(columns: {', '.join(map(str, scope.columns))})",
            "add the column(s) to the data file or change `sensitiveFeatures` in the policy",
        )


def _cells(data: pd.DataFrame, features: tuple[str, ...], cell: np.ndarray) -> pd.DataFrame:
    """One batch's confusion counts: a row per group present, indexed by its labels."""
    frame = data[list(features)].astype("string").fillna(MISSING)
    index = pd.MultiIndex.from_frame(frame)
    codes, uniques = index.factorize()
    counts = np.bincount(4 * codes + cell, minlength=4 * len(uniques)).reshape(-1, 4)
    return pd.DataFrame(counts, index=uniques, columns=list(range(4)))


def _grouping(spec: FairnessCheck, features: tuple[str, ...], table: pd.DataFrame) -> Grouping:
    """The merged counts in label order; too-small groups are an error or left out."""
    table = table.sort_index()
    labels = table.index.to_frame(index=False)
    labels.columns = list(features)
    counts = table.to_numpy(dtype=np.int64)
    sizes = counts.sum(axis=1)
    small = sizes < spec.min_group_size
    grouping = Grouping(features, labels, counts, ~small)
    if small.any() and spec.small_groups == "error":
        named = "; ".join(
            f"{grouping.label(int(i))} has {sizes[i]} rows" for i in np.flatnonzero(small)
        )
        raise InputError(
            f"fairness check '{spec.id}'",
            f"{named} — fewer than minGroupSize {spec.min_group_size}, too few to judge",
            "add data for the group, lower `minGroupSize`, or set `smallGroups: exclude` "
            "to report the group without comparing it",
        )
    return grouping


def _report(grouping: Grouping) -> dict:
    """Every group's figures and the grouping's disparities, as fairlearn computes them."""
    y_true, y_pred, groups, weight = grouping.compressed()
    frame = flm.MetricFrame(
        metrics=_GROUP_METRICS,
        y_true=y_true,
        y_pred=y_pred,
        sensitive_features=groups,
        sample_params={name: {"sample_weight": weight} for name in _GROUP_METRICS},
    )
    by_group = frame.by_group
    top_rate = float(by_group["selection_rate"].max())
    rows = []
    for index in range(len(grouping.labels)):
        values = tuple(grouping.labels.iloc[index])
        kept = bool(grouping.kept[index])
        figures = by_group.loc[values if len(values) > 1 else values[0]] if kept else None
        rate = _float(figures["selection_rate"]) if figures is not None else None
        rows.append(
            {
                "label": grouping.label(index),
                "group": dict(zip(grouping.features, values, strict=True)),
                "count": int(grouping.counts[index].sum()),
                "excluded": not kept,
                **{
                    name: _float(figures[name]) if figures is not None else None
                    for name in _GROUP_METRICS
                },
                "impact_ratio": rate / top_rate if rate is not None and top_rate > 0 else None,
            }
        )
    disparities = {
        name: _float(function(y_true, y_pred, sensitive_features=groups, sample_weight=weight))
        for name, function in _DISPARITIES.items()
    }
    return {"features": list(grouping.features), "groups": rows, **disparities}


def _judge(
    rule: FairnessRule,
    spec: FairnessCheck,
    groupings: list[Grouping],
    reports: list[dict],
    index: int,
) -> RuleOutcome:
    """A rule holds only if it holds over every grouping it covers; report the worst."""
    worst = worst_grouping(rule, reports)
    grouping = groupings[worst]
    interval = _bootstrap(grouping, rule.metric, spec) if spec.bootstrap is not None else None
    return judge_fairness(rule, rule_severity(rule, spec), reports[worst], interval)


def disparities_from_counts(counts: np.ndarray, metric: str) -> np.ndarray:
    """The disparity `metric` from confusion counts shaped (..., groups, 4), vectorised over
    leading axes (bootstrap replicates). Same definitions as fairlearn's functions."""
    tn, fp, fn, tp = (counts[..., cell].astype(float) for cell in range(4))
    with np.errstate(divide="ignore", invalid="ignore"):
        rates = {
            "selection": (fp + tp) / (tn + fp + fn + tp),
            "tpr": tp / (tp + fn),
            "fpr": fp / (fp + tn),
        }

        def difference(rate: np.ndarray) -> np.ndarray:
            return np.nanmax(rate, axis=-1) - np.nanmin(rate, axis=-1)

        def ratio(rate: np.ndarray) -> np.ndarray:
            return np.nanmin(rate, axis=-1) / np.nanmax(rate, axis=-1)

        kinds = {
            "demographic_parity_difference": lambda: difference(rates["selection"]),
            "demographic_parity_ratio": lambda: ratio(rates["selection"]),
            "equalized_odds_difference": lambda: np.maximum(
                difference(rates["tpr"]), difference(rates["fpr"])
            ),
            "equalized_odds_ratio": lambda: np.minimum(ratio(rates["tpr"]), ratio(rates["fpr"])),
            "equal_opportunity_difference": lambda: difference(rates["tpr"]),
            "equal_opportunity_ratio": lambda: ratio(rates["tpr"]),
        }
        return np.asarray(kinds[metric]())


def _bootstrap(grouping: Grouping, metric: str, spec: FairnessCheck) -> tuple[float, float]:
    """Percentile interval from the row bootstrap. Resampling n rows with replacement gives
    multinomial cell counts, so we draw the counts directly: the same distribution as
    resampling rows, at a cost that does not grow with the data."""
    assert spec.bootstrap is not None
    counts = grouping.counts[grouping.kept]
    total = int(counts.sum())
    rng = np.random.default_rng(spec.bootstrap.seed)
    draws = rng.multinomial(total, counts.ravel() / total, size=spec.bootstrap.samples)
    values = disparities_from_counts(draws.reshape(-1, *counts.shape), metric)
    tail = (1 - spec.bootstrap.confidence) / 2
    low, high = np.nanquantile(values, [tail, 1 - tail])
    return float(low), float(high)


def _summary(outcomes: list[RuleOutcome], reports: list[dict]) -> str:
    failed = [outcome for outcome in outcomes if not outcome.passed]
    blocking = [outcome for outcome in failed if outcome.severity is Severity.BLOCKING]
    groups = [g for report in reports for g in report["groups"] if g["impact_ratio"] is not None]
    lowest = min(groups, key=lambda g: g["impact_ratio"])
    impact = f"lowest impact ratio {lowest['impact_ratio']:.2f} ({lowest['label']})"
    if not failed:
        return f"All {len(outcomes)} fairness rules held; {impact}."
    worst = (blocking or failed)[0]
    observed = "undefined" if worst.observed is None else f"{worst.observed:.3g}"
    counts = f"{len(blocking)} blocking rule(s) failed, {len(failed) - len(blocking)} warning(s)"
    return f"{counts}: {worst.rule} was {observed} ({worst.detail}); {impact}."


def _float(value: object) -> float | None:
    number = float(value)  # type: ignore[arg-type]
    return number if np.isfinite(number) else None
