"""The naive drift baseline: evidently's own `DataDriftPreset`, as a user would call it.

Run by `bench/gate_1m.py` in a child process, so that a run that takes too long can be
stopped and its peak memory measured on its own:

    .venv/bin/python bench/naive_evidently.py --current C.parquet --reference R.parquet \
        --rows N --columns-json COLS.json --out RESULT.json

Reads the first `--rows` rows of each file (rows are i.i.d., so the head is a fair
sample), then times `Dataset.from_pandas` + `Report.run`, and writes every column's
drift score, method, threshold and evidently's own verdict (its per-column test).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import pandas as pd
from evidently import DataDefinition, Dataset, Report
from evidently.presets import DataDriftPreset


def run(
    current: pd.DataFrame, reference: pd.DataFrame, numerical: list[str], categorical: list[str]
) -> dict[str, Any]:
    """Time evidently's DataDriftPreset and collect its per-column results."""
    definition = DataDefinition(numerical_columns=numerical, categorical_columns=categorical)
    columns = numerical + categorical
    started = time.perf_counter()
    snapshot = Report([DataDriftPreset()], include_tests=True).run(
        Dataset.from_pandas(current[columns], data_definition=definition),
        Dataset.from_pandas(reference[columns], data_definition=definition),
    )
    seconds = time.perf_counter() - started
    document = snapshot.dict()
    scores: dict[str, dict[str, Any]] = {}
    for metric in document["metrics"]:
        config = metric["config"]
        if config.get("type", "").endswith("ValueDrift"):
            scores[config["column"]] = {
                "method": config["method"],
                "threshold": config["threshold"],
                "score": metric["value"],
            }
    for test in document["tests"]:  # evidently's own verdict: its per-column drift test
        params = test["metric_config"]["params"]
        if params.get("type", "").endswith("ValueDrift"):
            scores[params["column"]]["drifted"] = test["status"] == "FAIL"
    return {"seconds": seconds, "rows": len(current), "columns": scores}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--current", type=Path, required=True)
    parser.add_argument("--reference", type=Path, required=True)
    parser.add_argument("--rows", type=int, required=True)
    parser.add_argument("--columns-json", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    kinds = json.loads(args.columns_json.read_text())
    current = pd.read_parquet(args.current).head(args.rows)
    reference = pd.read_parquet(args.reference).head(args.rows)
    result = run(current, reference, kinds["numerical"], kinds["categorical"])
    args.out.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
