"""NYC Local Law 144 bias audit: every rate and impact ratio against a plain recount."""

from __future__ import annotations

import json
import math
import statistics
from collections import defaultdict
from typing import Any

import numpy as np
import pandas as pd
import pytest
from fairlearn.metrics import MetricFrame, selection_rate

from governance.checks.bias_audit import BiasAudit, DimensionTable, bias_audit
from governance.domain.errors import InputError

SOURCE = "UCI Adult, 1994 US Census extract"


# --- an independent recount, one record at a time ------------------------------------------


def plain_label(value: Any) -> str | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    text = str(value).strip()
    return None if text.lower() in {"", "?", "unknown"} else text


def recount(
    sexes: list[Any], races: list[Any], hits: list[bool], min_share: float = 0.02
) -> dict[str, dict[str, Any]]:
    """Per dimension: unknown count and {category: (records, rate, ratio, excluded, flag)}."""
    counts: dict[str, dict[str, list[int]]] = {
        d: defaultdict(lambda: [0, 0]) for d in ("sex", "race", "intersectional")
    }
    unknown = dict.fromkeys(counts, 0)
    for raw_sex, raw_race, hit in zip(sexes, races, hits, strict=True):
        sex, race = plain_label(raw_sex), plain_label(raw_race)
        both = f"{sex} × {race}" if sex is not None and race is not None else None
        for dimension, key in (("sex", sex), ("race", race), ("intersectional", both)):
            if key is None:
                unknown[dimension] += 1
            else:
                counts[dimension][key][0] += 1
                counts[dimension][key][1] += int(hit)
    result: dict[str, dict[str, Any]] = {}
    for dimension, table in counts.items():
        known = sum(records for records, _ in table.values())
        rates = {key: hits / records for key, (records, hits) in table.items()}
        excluded = {key: table[key][0] / known < min_share for key in table}
        highest = max(rate for key, rate in rates.items() if not excluded[key])
        rows = {}
        for key, rate in rates.items():
            ratio = None if excluded[key] else rate / highest
            flag = ratio is not None and ratio < 0.8
            rows[key] = (table[key][0], rate, ratio, excluded[key], flag)
        result[dimension] = {"unknown": unknown[dimension], "rows": rows}
    return result


def assert_matches(audit: BiasAudit, expected: dict[str, dict[str, Any]]) -> None:
    assert [t.dimension for t in audit.tables] == ["sex", "race", "intersectional"]
    for table in audit.tables:
        want = expected[table.dimension]
        assert table.unknown_records == want["unknown"], table.dimension
        got = {
            row.category: (
                row.records,
                row.rate,
                row.impact_ratio,
                row.excluded,
                row.four_fifths_flag,
            )
            for row in table.categories
        }
        assert got.keys() == want["rows"].keys(), table.dimension
        for category, (records, rate, ratio, excluded, flag) in want["rows"].items():
            g_records, g_rate, g_ratio, g_excluded, g_flag = got[category]
            assert g_records == records, category
            assert g_rate == pytest.approx(rate, rel=1e-12, abs=0), category
            if ratio is None:
                assert g_ratio is None, category
            else:
                assert g_ratio == pytest.approx(ratio, rel=1e-12, abs=0), category
            assert (g_excluded, g_flag) == (excluded, flag), category
        assert_table_shape(table)


def assert_table_shape(table: DimensionTable) -> None:
    """Ordered by rate then name; the highest non-excluded category has ratio 1.0."""
    keys = [(-row.rate, row.category) for row in table.categories]
    assert keys == sorted(keys)
    top = next(row for row in table.categories if row.category == table.highest_rate_category)
    assert not top.excluded
    assert top.impact_ratio == 1.0
    kept = [row for row in table.categories if not row.excluded]
    assert top.rate == max(row.rate for row in kept)
    for row in table.categories:
        if row.excluded:
            assert row.impact_ratio is None and not row.four_fifths_flag
        else:
            assert row.impact_ratio is not None
            assert row.four_fifths_flag == (row.impact_ratio < 0.8)


# --- real data: UCI Adult --------------------------------------------------------------------


@pytest.fixture(scope="module")
def adult_tool(adult: pd.DataFrame) -> pd.DataFrame:
    """Adult as a selection tool's output (selected = income >50K) and a scoring tool's."""
    return pd.DataFrame(
        {
            "sex": adult["sex"],
            "race": adult["race"],
            "selected": adult["income"] == 1,  # the loader codes '>50K' as 1
            "income": adult["income"],
            "score": adult["age"] + adult["hours_per_week"],
        }
    )


def test_adult_selection_matches_a_plain_recount(adult_tool: pd.DataFrame) -> None:
    audit = bias_audit(
        adult_tool,
        sex="sex",
        race="race",
        selected="selected",
        source=SOURCE,
        date_from="1994-01-01",
        date_to="1994-12-31",
    )
    assert audit.kind == "selection"
    assert audit.records == len(adult_tool) == 48_842
    assert audit.median_score is None
    assert (audit.source, audit.date_from, audit.date_to) == (SOURCE, "1994-01-01", "1994-12-31")
    assert_matches(
        audit,
        recount(
            adult_tool["sex"].tolist(), adult_tool["race"].tolist(), adult_tool["selected"].tolist()
        ),
    )


def test_adult_selection_rates_are_fairlearns(adult_tool: pd.DataFrame) -> None:
    audit = bias_audit(adult_tool, sex="sex", race="race", selected="selected", source=SOURCE)
    y = adult_tool["selected"].to_numpy()
    for table in audit.tables[:2]:
        frame = MetricFrame(
            metrics=selection_rate,
            y_true=y,
            y_pred=y,
            sensitive_features=adult_tool[table.column],
        )
        theirs = frame.by_group.to_dict()
        assert {row.category: row.rate for row in table.categories} == pytest.approx(theirs)


def test_adult_small_races_are_excluded_and_women_flagged(adult_tool: pd.DataFrame) -> None:
    audit = bias_audit(adult_tool, sex="sex", race="race", selected="selected", source=SOURCE)
    sex, race, cross = audit.tables
    rows = {row.category: row for row in race.categories}
    for small in ("Amer-Indian-Eskimo", "Other"):  # each under 1% of Adult
        assert rows[small].excluded
        assert rows[small].impact_ratio is None
        assert not rows[small].four_fifths_flag
    for kept in ("White", "Black", "Asian-Pac-Islander"):
        assert not rows[kept].excluded
    assert race.unknown_records == sex.unknown_records == cross.unknown_records == 0
    assert {row.category for row in sex.categories} == {"Male", "Female"}
    assert sex.highest_rate_category == "Male"
    female = next(row for row in sex.categories if row.category == "Female")
    assert female.four_fifths_flag and female.impact_ratio is not None
    assert female.impact_ratio < 0.8
    assert "sex: Female" in audit.four_fifths_flagged
    assert len(cross.categories) == 10  # every sex × race combination occurs in Adult
    assert all(" × " in row.category for row in cross.categories)
    assert cross.column == "sex × race"


def test_adult_zero_one_integers_give_the_same_audit(adult_tool: pd.DataFrame) -> None:
    as_bool = bias_audit(adult_tool, sex="sex", race="race", selected="selected", source=SOURCE)
    as_int = bias_audit(adult_tool, sex="sex", race="race", selected="income", source=SOURCE)
    assert as_int.tables == as_bool.tables


def test_adult_scoring_matches_a_plain_recount(adult_tool: pd.DataFrame) -> None:
    audit = bias_audit(adult_tool, sex="sex", race="race", score="score", source=SOURCE)
    scores = adult_tool["score"].tolist()
    median = statistics.median(scores)
    assert audit.kind == "scoring"
    assert audit.median_score == median
    # Integer scores: many records sit exactly on the median, and they do not count.
    assert scores.count(median) > 100
    hits = [value > median for value in scores]
    assert_matches(audit, recount(adult_tool["sex"].tolist(), adult_tool["race"].tolist(), hits))


def test_adult_audit_is_plain_json(adult_tool: pd.DataFrame) -> None:
    audit = bias_audit(
        adult_tool, sex="sex", race="race", score="score", source=SOURCE, date_to="1994-12-31"
    )
    document = audit.as_dict()
    assert json.loads(json.dumps(document)) == document
    assert document["source"] == SOURCE
    assert document["date_from"] is None and document["date_to"] == "1994-12-31"
    assert document["four_fifths_flagged"] == audit.four_fifths_flagged
    row = document["tables"][0]["categories"][0]
    assert set(row) == {
        "category",
        "records",
        "rate",
        "impact_ratio",
        "excluded",
        "four_fifths_flag",
    }
    assert type(row["rate"]) is float and type(row["records"]) is int


# --- generated edge cases --------------------------------------------------------------------


def test_unknown_categories_are_counted_and_left_out() -> None:
    frame = pd.DataFrame(
        {
            "sex": ["Female", "Male", "?", "", np.nan, " unknown ", "Female", "Male", "UNKNOWN",
                    " Male ", "Female", None],
            "race": ["White", "Black", "White", "Black", "White", "White", "?", None, "Black",
                     "White", "Black", "Black"],
            "selected": [True, False, True, True, True, True, True, False, True,
                         True, False, True],
        }
    )  # fmt: skip
    audit = bias_audit(frame, sex="sex", race="race", selected="selected", source="generated")
    sex, race, cross = audit.tables
    assert sex.unknown_records == 6  # "?", "", NaN, " unknown ", "UNKNOWN", None
    assert race.unknown_records == 2  # "?", None
    assert cross.unknown_records == 8  # either part unknown
    by_sex = {row.category: (row.records, row.rate) for row in sex.categories}
    assert by_sex == {"Female": (3, 2 / 3), "Male": (3, 1 / 3)}  # " Male " is Male
    by_race = {row.category: (row.records, row.rate) for row in race.categories}
    assert by_race == {"White": (5, 1.0), "Black": (5, 3 / 5)}
    by_cross = {row.category: (row.records, row.rate) for row in cross.categories}
    assert by_cross == {
        "Female × White": (1, 1.0),
        "Male × Black": (1, 0.0),
        "Male × White": (1, 1.0),
        "Female × Black": (1, 0.0),
    }
    assert_matches(
        audit,
        recount(frame["sex"].tolist(), frame["race"].tolist(), frame["selected"].tolist()),
    )


def test_scoring_counts_only_scores_strictly_above_the_median() -> None:
    frame = pd.DataFrame(
        {
            "sex": ["A"] * 4 + ["B"] * 4,
            "race": ["X", "Y"] * 4,
            "score": [2, 2, 2, 3, 1, 2, 4, 4],
        }
    )
    audit = bias_audit(frame, sex="sex", race="race", score="score", source="generated")
    assert audit.median_score == 2.0
    rates = {row.category: row.rate for row in audit.tables[0].categories}
    assert rates == {"A": 1 / 4, "B": 2 / 4}  # ">=" would give A 4/4 and B 3/4
    ratios = {row.category: row.impact_ratio for row in audit.tables[0].categories}
    assert ratios == {"A": 0.5, "B": 1.0}


def test_scoring_median_is_over_the_whole_sample_unknowns_included() -> None:
    frame = pd.DataFrame(
        {
            "sex": ["A", "A", "B", "B", "?", "?", "?"],
            "race": ["X"] * 7,
            "score": [5.0, 6.0, 7.0, 8.0, 0.0, 0.0, 0.0],
        }
    )
    audit = bias_audit(frame, sex="sex", race="race", score="score", source="generated")
    assert audit.median_score == 5.0  # the known records alone would give 6.5
    rates = {row.category: row.rate for row in audit.tables[0].categories}
    assert rates == {"A": 0.5, "B": 1.0}
    assert audit.tables[0].unknown_records == 3


def share_frame(total: int, small: int) -> pd.DataFrame:
    """`small` records of race "Tiny", all selected; the rest White/Black, some selected."""
    rest = total - small
    races = ["Tiny"] * small + ["White", "Black"] * (rest // 2) + ["White"] * (rest % 2)
    selected = [True] * small + [i % 4 == 0 for i in range(rest)]
    sexes = ["Female", "Male"] * (total // 2) + ["Female"] * (total % 2)
    return pd.DataFrame({"sex": sexes, "race": races, "selected": selected})


@pytest.mark.parametrize(
    ("total", "small", "excluded"),
    [
        (100, 2, False),  # exactly 2%: not under
        (350, 7, False),
        (1000, 19, True),  # 1.9%
        (1000, 20, False),
        (1000, 21, False),
    ],
)
def test_categories_under_min_share_are_excluded(total: int, small: int, excluded: bool) -> None:
    frame = share_frame(total, small)
    audit = bias_audit(frame, sex="sex", race="race", selected="selected", source="generated")
    race = audit.tables[1]
    tiny = next(row for row in race.categories if row.category == "Tiny")
    assert tiny.records == small and tiny.rate == 1.0
    assert tiny.excluded is excluded
    if excluded:
        assert tiny.impact_ratio is None and not tiny.four_fifths_flag
        # Not a candidate for the highest rate, though its rate is the highest.
        assert race.highest_rate_category != "Tiny"
        assert race.categories[0].category == "Tiny"  # still listed, by rate
        white = next(row for row in race.categories if row.category == race.highest_rate_category)
        assert white.impact_ratio == 1.0
    else:
        assert race.highest_rate_category == "Tiny" and tiny.impact_ratio == 1.0
    assert_table_shape(race)


def test_exactly_min_share_is_kept_despite_floating_point() -> None:
    """7 of 100 is exactly 7%, though 7 < 0.07 * 100 (= 7.000000000000001) in floats."""
    assert 7 < 0.07 * 100
    frame = share_frame(100, 7)
    audit = bias_audit(
        frame, sex="sex", race="race", selected="selected", source="g", min_share=0.07
    )
    assert not next(r for r in audit.tables[1].categories if r.category == "Tiny").excluded
    frame = share_frame(100, 6)
    audit = bias_audit(
        frame, sex="sex", race="race", selected="selected", source="g", min_share=0.07
    )
    assert next(r for r in audit.tables[1].categories if r.category == "Tiny").excluded


def test_min_share_is_configurable() -> None:
    frame = share_frame(1000, 50)  # 5%
    kept = bias_audit(frame, sex="sex", race="race", selected="selected", source="g")
    assert not next(r for r in kept.tables[1].categories if r.category == "Tiny").excluded
    cut = bias_audit(frame, sex="sex", race="race", selected="selected", source="g", min_share=0.1)
    assert cut.min_share == 0.1
    assert next(r for r in cut.tables[1].categories if r.category == "Tiny").excluded
    assert_matches(
        cut,
        recount(frame["sex"].tolist(), frame["race"].tolist(), frame["selected"].tolist(), 0.1),
    )


def test_ties_in_rate_are_ordered_by_name_and_flags_listed() -> None:
    frame = pd.DataFrame(
        {
            "sex": ["Male", "Female", "Male", "Female", "Male", "Female"],
            "race": ["C", "C", "B", "B", "A", "A"],
            "selected": [1, 1, 1, 0, 1, 0],
        }
    )
    audit = bias_audit(frame, sex="sex", race="race", selected="selected", source="g")
    race = audit.tables[1]
    assert [row.category for row in race.categories] == ["C", "A", "B"]
    assert race.highest_rate_category == "C"
    assert [row.impact_ratio for row in race.categories] == [1.0, 0.5, 0.5]
    assert audit.four_fifths_flagged == [
        "sex: Female",
        "race: A",
        "race: B",
        "intersectional: Female × A",
        "intersectional: Female × B",
    ]


def small_frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "sex": ["Female", "Male", "Female", "Male"],
            "race": ["White", "White", "Black", "Black"],
            "selected": [True, False, True, True],
            "score": [1.0, 2.0, 3.0, 4.0],
        }
    )


@pytest.mark.parametrize(
    ("arguments", "missing"),
    [
        ({"sex": "gender", "race": "race", "selected": "selected"}, "gender"),
        ({"sex": "sex", "race": "ethnicity", "selected": "selected"}, "ethnicity"),
        ({"sex": "sex", "race": "race", "selected": "hired"}, "hired"),
        ({"sex": "sex", "race": "race", "score": "points"}, "points"),
    ],
)
def test_a_missing_column_is_named(arguments: dict[str, str], missing: str) -> None:
    with pytest.raises(InputError) as caught:
        bias_audit(small_frame(), source="g", **arguments)
    assert caught.value.subject == missing
    assert "not a column" in caught.value.problem and caught.value.fix


@pytest.mark.parametrize("outcomes", [{}, {"selected": "selected", "score": "score"}])
def test_exactly_one_of_selected_and_score(outcomes: dict[str, str]) -> None:
    with pytest.raises(InputError) as caught:
        bias_audit(small_frame(), sex="sex", race="race", source="g", **outcomes)
    assert caught.value.subject == "selected/score"
    assert "selected=" in caught.value.fix and "score=" in caught.value.fix


def test_a_missing_score_is_an_input_error() -> None:
    frame = small_frame()
    frame.loc[2, "score"] = np.nan
    with pytest.raises(InputError) as caught:
        bias_audit(frame, sex="sex", race="race", score="score", source="g")
    assert caught.value.subject == "score"
    assert "1 record" in caught.value.problem


@pytest.mark.parametrize(
    "values",
    [
        [0, 1, 2, 1],  # an integer other than 0/1
        [0.0, 1.0, 1.0, 0.0],  # floats
        ["yes", "no", "yes", "no"],  # strings
        [True, False, None, True],  # a missing value
    ],
)
def test_selected_must_be_bool_or_zero_one(values: list[Any]) -> None:
    frame = small_frame().assign(selected=values)
    with pytest.raises(InputError) as caught:
        bias_audit(frame, sex="sex", race="race", selected="selected", source="g")
    assert caught.value.subject == "selected"


def test_a_dimension_with_no_known_category_is_an_input_error() -> None:
    frame = small_frame().assign(race=["?", "", None, "Unknown"])
    with pytest.raises(InputError) as caught:
        bias_audit(frame, sex="sex", race="race", selected="selected", source="g")
    assert caught.value.subject == "race"
    assert "no record with a known category" in caught.value.problem


def test_no_one_selected_has_no_impact_ratio() -> None:
    frame = small_frame().assign(selected=False)
    with pytest.raises(InputError) as caught:
        bias_audit(frame, sex="sex", race="race", selected="selected", source="g")
    assert caught.value.subject == "selected"


@pytest.mark.parametrize(
    ("arguments", "subject"),
    [
        ({"date_from": "1994-13-01"}, "date_from"),
        ({"date_to": "last year"}, "date_to"),
        ({"date_from": "1995-01-01", "date_to": "1994-12-31"}, "date_from"),
        ({"source": "  "}, "source"),
        ({"min_share": 1.5}, "min_share"),
    ],
)
def test_bad_descriptions_are_input_errors(arguments: dict[str, Any], subject: str) -> None:
    call: dict[str, Any] = {"source": "g", **arguments}
    with pytest.raises(InputError) as caught:
        bias_audit(small_frame(), sex="sex", race="race", selected="selected", **call)
    assert caught.value.subject == subject


def test_a_large_generated_sample_matches_numpy_counts() -> None:
    """Vectorised over many rows (no timing asserted): the counts match numpy's."""
    rng = np.random.default_rng(7)
    n = 200_000
    sexes = rng.choice(np.array(["Female", "Male", "?"], dtype=object), n, p=[0.48, 0.5, 0.02])
    races = rng.choice(np.array(["White", "Black", "Asian", "Other"]), n, p=[0.6, 0.25, 0.14, 0.01])
    scores = rng.integers(0, 100, n)
    frame = pd.DataFrame({"sex": sexes, "race": races, "score": scores})
    audit = bias_audit(frame, sex="sex", race="race", score="score", source="g")
    median = np.median(scores)
    assert audit.median_score == median
    race = {row.category: row for row in audit.tables[1].categories}
    for name in ("White", "Black", "Asian", "Other"):
        mask = races == name
        assert race[name].records == int(mask.sum())
        assert race[name].rate == pytest.approx(float((scores[mask] > median).mean()), rel=1e-12)
    assert race["Other"].excluded and not race["Asian"].excluded
    assert audit.tables[0].unknown_records == int((sexes == "?").sum())
    assert audit.tables[2].unknown_records == int((sexes == "?").sum())


def test_an_impact_ratio_of_exactly_four_fifths_is_not_flagged() -> None:
    frame = pd.DataFrame(
        {
            "sex": ["Female"] * 5 + ["Male"] * 5,
            "race": ["White"] * 10,
            "selected": [True] * 5 + [True] * 4 + [False],
        }
    )
    audit = bias_audit(frame, sex="sex", race="race", selected="selected", source="g")
    male = next(row for row in audit.tables[0].categories if row.category == "Male")
    assert male.impact_ratio == 0.8 and not male.four_fifths_flag
    assert audit.four_fifths_flagged == []
