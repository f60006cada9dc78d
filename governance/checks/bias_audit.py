"""The figures of a NYC Local Law 144 bias audit of an automated employment decision tool.

Local Law 144 of 2021 forbids using such a tool on candidates in New York City unless an
independent bias audit of it was done within the past year, and its rules (6 RCNY §5-300
and §5-301) say what the audit must state, separately for sex categories, race/ethnicity
categories and the intersectional (sex × race/ethnicity) categories:

- for a tool that **selects** (or classifies) candidates: each category's selection rate,
  the share of its candidates selected, and its impact ratio, that rate divided by the
  highest category's;
- for a tool that **scores** candidates: each category's scoring rate, the share of its
  candidates scoring above the median score of the whole sample, and its impact ratio,
  that rate divided by the highest category's;
- the number of candidates in each category, and the number whose category is unknown
  (they are counted, but are not a category and are left out of the rates);
- the source and the dates of the data.

The rules allow an auditor to leave a category that holds under 2% of the data out of the
impact-ratio calculation; we still report its rate, mark it `excluded`, and do not let it be
the highest-rate category.

Local Law 144 sets no threshold an impact ratio must meet. `four_fifths_flag` marks the
categories whose impact ratio is under 0.8 — the four-fifths rule of thumb of the EEOC's
Uniform Guidelines, 29 CFR 1607.4(D) — for information only: it is not a pass/fail verdict.

Pure: a DataFrame in, frozen dataclasses out. Categories are counted with `pandas.groupby`
on integer codes (labels are normalised once per distinct value, not per row), so a
million rows take a fraction of a second.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import date
from fractions import Fraction
from typing import Any, Literal

import numpy as np
import pandas as pd

from governance.domain.errors import InputError

FOUR_FIFTHS = 0.8
SEPARATOR = " × "
UNKNOWN_LABELS = frozenset({"", "?", "unknown"})  # compared after strip() and casefold()

Kind = Literal["selection", "scoring"]
Dimension = Literal["sex", "race", "intersectional"]


@dataclass(frozen=True)
class CategoryRate:
    """One category's line in a table of the audit."""

    category: str  # "Female", "White", or "Female × White" for intersectional
    records: int
    rate: float  # selection rate or scoring rate
    impact_ratio: float | None  # None when excluded
    excluded: bool  # under min_share of the known records: left out of impact ratios
    four_fifths_flag: bool  # impact ratio under 0.8 (informational, not an LL144 threshold)


@dataclass(frozen=True)
class DimensionTable:
    """The rates and impact ratios for one way of dividing candidates into categories."""

    dimension: Dimension
    column: str  # the column(s) used, e.g. "sex", "race", "sex × race"
    categories: list[CategoryRate]  # ordered by rate descending, then name
    unknown_records: int
    highest_rate_category: str


@dataclass(frozen=True)
class BiasAudit:
    """Everything a Local Law 144 bias audit states, for sex, race and their intersection."""

    kind: Kind
    records: int
    median_score: float | None  # scoring only: the median over the whole sample
    min_share: float
    tables: list[DimensionTable]  # sex, race, intersectional — in that order
    source: str
    date_from: str | None
    date_to: str | None

    def as_dict(self) -> dict[str, Any]:
        """Plain dicts, lists, strings and numbers (JSON-serialisable)."""
        document = asdict(self)
        document["four_fifths_flagged"] = self.four_fifths_flagged
        return document

    @property
    def four_fifths_flagged(self) -> list[str]:
        """ "dimension: category" for every category whose impact ratio is under 0.8."""
        return [
            f"{table.dimension}: {row.category}"
            for table in self.tables
            for row in table.categories
            if row.four_fifths_flag
        ]


def bias_audit(
    frame: pd.DataFrame,
    *,
    sex: str,
    race: str,
    selected: str | None = None,
    score: str | None = None,
    source: str,
    date_from: str | None = None,
    date_to: str | None = None,
    min_share: float = 0.02,
) -> BiasAudit:
    """The bias audit of a selection tool (`selected`: a bool or 0/1 column) or a scoring
    tool (`score`: a numeric column) — exactly one of the two — over `frame`."""
    _check_arguments(frame, sex, race, selected, score, source, date_from, date_to, min_share)
    kind: Kind = "selection" if selected is not None else "scoring"
    median: float | None = None
    if selected is not None:
        hits = _selected(frame[selected], selected)
        outcome, counted = selected, "selected"
    else:
        assert score is not None
        values = _scores(frame[score], score)
        median = float(np.median(values)) if len(values) else float("nan")
        hits = (values > median).astype(np.int64)  # strictly above the whole sample's median
        outcome, counted = score, "above the median score"

    sex_codes, sex_names = _categories(frame[sex])
    race_codes, race_names = _categories(frame[race])
    both_known = (sex_codes >= 0) & (race_codes >= 0)
    cross_codes = np.where(both_known, sex_codes * len(race_names) + race_codes, -1)
    cross_names = [f"{s}{SEPARATOR}{r}" for s in sex_names for r in race_names]

    share = Fraction(repr(float(min_share)))  # 0.02 read as 1/50 exactly, as a person means it
    cross = f"{sex}{SEPARATOR}{race}"
    tables = [
        _table("sex", sex, sex_codes, sex_names, hits, share, (outcome, counted)),
        _table("race", race, race_codes, race_names, hits, share, (outcome, counted)),
        _table("intersectional", cross, cross_codes, cross_names, hits, share, (outcome, counted)),
    ]
    return BiasAudit(
        kind=kind,
        records=len(frame),
        median_score=median,
        min_share=float(min_share),
        tables=tables,
        source=source,
        date_from=date_from,
        date_to=date_to,
    )


def _check_arguments(
    frame: pd.DataFrame,
    sex: str,
    race: str,
    selected: str | None,
    score: str | None,
    source: str,
    date_from: str | None,
    date_to: str | None,
    min_share: float,
) -> None:
    if (selected is None) == (score is None):
        given = "both were given" if selected is not None else "neither was given"
        raise InputError(
            "selected/score",
            f"exactly one of `selected` and `score` must name a column; {given}",
            "pass `selected=` the column saying whether each candidate was selected "
            "(a selection tool) or `score=` the column of each candidate's score (a scoring "
            "tool)",
        )
    roles = {
        sex: "each candidate's sex",
        race: "each candidate's race/ethnicity",
        (selected or score or ""): (
            "whether each candidate was selected" if selected else "each candidate's score"
        ),
    }
    columns = ", ".join(map(str, frame.columns)) or "none"
    for column, holds in roles.items():
        if column not in frame.columns:
            raise InputError(
                column,
                f"is not a column of the data (its columns: {columns})",
                f"pass the name of the column that holds {holds}",
            )
    if not 0 <= min_share < 1:
        raise InputError(
            "min_share",
            f"is {min_share}; it is a share of the records, at least 0 and under 1",
            "pass e.g. 0.02 (categories under 2% of the records are left out of impact ratios)",
        )
    if not source or not source.strip():
        raise InputError(
            "source", "is empty; an audit states where its data came from", "describe the data"
        )
    dates = {}
    for name, text in (("date_from", date_from), ("date_to", date_to)):
        if text is None:
            continue
        try:
            dates[name] = date.fromisoformat(text)
        except (TypeError, ValueError):
            raise InputError(
                name, f"{text!r} is not an ISO date", "pass a date as YYYY-MM-DD, or None"
            ) from None
    if len(dates) == 2 and dates["date_from"] > dates["date_to"]:
        raise InputError(
            "date_from",
            f"{date_from} is after date_to {date_to}",
            "pass the first and the last date the data covers, in that order",
        )


def _selected(column: pd.Series, name: str) -> np.ndarray:
    """0/1 per record from a bool or 0/1 integer column."""
    fix = "pass a column of booleans, or of the integers 0 and 1 (1 = selected)"
    if column.isna().any():
        raise InputError(
            name, f"has {int(column.isna().sum())} missing value(s)", f"fill them; {fix}"
        )
    if pd.api.types.is_bool_dtype(column.dtype):
        return column.to_numpy(dtype=np.int64)
    if pd.api.types.is_integer_dtype(column.dtype):
        values = column.to_numpy(dtype=np.int64)
        other = values[(values != 0) & (values != 1)]
        if len(other):
            raise InputError(
                name,
                f"holds {len(other)} value(s) other than 0 and 1 (e.g. {other[0]})",
                fix,
            )
        return values
    raise InputError(name, f"has type {column.dtype}, not bool or 0/1 integers", fix)


def _scores(column: pd.Series, name: str) -> np.ndarray:
    """Float scores; every record must have one."""
    if pd.api.types.is_bool_dtype(column.dtype) or not pd.api.types.is_numeric_dtype(column.dtype):
        raise InputError(
            name, f"has type {column.dtype}, not numbers", "pass the column of numeric scores"
        )
    missing = int(column.isna().sum())
    if missing:
        raise InputError(
            name,
            f"has {missing} record(s) without a score",
            "score every record, or drop the unscored records and say so in the audit",
        )
    return column.to_numpy(dtype=np.float64)


def _categories(column: pd.Series) -> tuple[np.ndarray, list[str]]:
    """Each record's category as an index into the returned names, -1 when unknown.

    Labels are stripped of surrounding whitespace (so " Female" is "Female") but keep their
    case ("female" is another category than "Female"); missing values, "", "?" and
    "unknown" in any case are unknown. Each distinct value is looked at once, not each row.
    """
    codes, uniques = pd.factorize(column, use_na_sentinel=True)
    positions: dict[str, int] = {}  # label -> index into the names, in order of appearance
    lookup = np.full(len(uniques) + 1, -1, dtype=np.int64)  # the last slot catches code -1
    for index, value in enumerate(uniques):
        label = str(value).strip()
        if label.casefold() not in UNKNOWN_LABELS:
            lookup[index] = positions.setdefault(label, len(positions))
    return lookup[codes], list(positions)


def _table(
    dimension: Dimension,
    column: str,
    codes: np.ndarray,
    names: list[str],
    hits: np.ndarray,
    min_share: Fraction,
    outcome: tuple[str, str],  # (the column of outcomes, what a hit is)
) -> DimensionTable:
    counts = (
        pd.DataFrame({"category": codes, "hit": hits})
        .groupby("category", sort=False)["hit"]
        .agg(["size", "sum"])
    )
    unknown = int(counts["size"].get(-1, 0))
    counts = counts.drop(index=-1, errors="ignore")
    known = int(counts["size"].sum())
    if known == 0:
        raise InputError(
            column,
            f"has no record with a known category ({unknown} unknown: missing, empty, '?' "
            "or 'Unknown')",
            f"pass data in which {column} is recorded for at least some candidates",
        )
    lines = []
    for code, size, hit in zip(counts.index, counts["size"], counts["sum"], strict=True):
        records = int(size)
        excluded = records * min_share.denominator < min_share.numerator * known
        lines.append((names[int(code)], records, int(hit) / records, excluded))
    candidates = [line for line in lines if not line[3]]
    if not candidates:
        raise InputError(
            column,
            f"has no category holding at least {float(min_share):.1%} of the known records, "
            "so no impact ratio can be computed",
            "pass a lower min_share (0 leaves no category out)",
        )
    highest_name, _, highest, _ = min(candidates, key=lambda line: (-line[2], line[0]))
    if highest == 0:
        outcome_column, counted = outcome
        raise InputError(
            outcome_column,
            f"no record of a {dimension} category counted in impact ratios is {counted}, "
            "so every rate is 0 and no impact ratio can be computed",
            f"audit data in which at least one candidate is {counted}",
        )
    rows = [
        CategoryRate(
            category=name,
            records=records,
            rate=rate,
            impact_ratio=None if excluded else rate / highest,
            excluded=excluded,
            four_fifths_flag=not excluded and rate / highest < FOUR_FIFTHS,
        )
        for name, records, rate, excluded in sorted(lines, key=lambda line: (-line[2], line[0]))
    ]
    return DimensionTable(
        dimension=dimension,
        column=column,
        categories=rows,
        unknown_records=unknown,
        highest_rate_category=highest_name,
    )
