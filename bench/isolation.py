"""What running a check job outside the server costs: one request's checks in-process
against the same checks through `IsolatedChecks` (a fork of a warm zygote, scrubbed
environment, memory cap, answer over a socket).

Inputs: UCI Adult's test split as the evaluation data and its training split as the
reference, judged under the shipped high-risk policy with the tests' smaller samples (SHAP
on 100 rows, 50 bootstrap draws: the same checks, seconds instead of a minute), or under
`--policy`; two models, both saved with skops: the demo's `income-reweighed` (a decision
threshold around gradient-boosted trees: Tree SHAP) and a logistic regression (no tree:
the permutation explainer and shap's compiled loops). Each variant runs `--repeat` times;
the median and the spread are printed as a Markdown table. The in-process variant is timed
warm (libraries imported once, as in a long-running server). The isolated job runs twice
over: forked from a zygote that is already warm (every job of a running service but its
first; for the linear model, after the first job had the zygote make shap's loops), and
as a service's first job (a new zygote, with a new, empty numba cache).

    PYTHONPATH=$PWD .venv/bin/python bench/isolation.py --repeat 5
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import replace
from functools import partial
from pathlib import Path

import pandas as pd
import skops.io
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from governance.connectors import files
from governance.connectors.adult import TARGET, load_adult
from governance.demo import MODELS, SEED, train
from governance.domain.policy import PromotionPolicy
from governance.resources import PACKAGED_POLICIES
from governance.services.gate import judge
from governance.services.isolation import IsolatedChecks
from governance.services.ports import GateRequest


def inputs(directory: Path, policy_file: Path) -> dict[str, GateRequest]:
    adult = load_adult()
    training, evaluation = train_test_split(
        adult, test_size=0.3, random_state=SEED, stratify=adult[TARGET]
    )
    training.to_parquet(directory / "train.parquet", index=False)
    evaluation.to_parquet(directory / "test.parquet", index=False)
    spec = next(s for s in MODELS if s.name == "income-reweighed" and s.version == "1")
    skops.io.dump(train(spec, training), directory / "trees.skops")
    skops.io.dump(linear(training, spec.features), directory / "linear.skops")
    request = GateRequest(
        policy=policy_file,
        data=directory / "test.parquet",
        target=TARGET,
        model=directory / "trees.skops",
        reference=directory / "train.parquet",
        model_name="income",
        model_version="1",
    )
    return {
        "demo model (trees, thresholded)": request,
        "logistic regression (no tree)": replace(request, model=directory / "linear.skops"),
    }


def linear(training: pd.DataFrame, features: list[str]) -> Pipeline:
    text = [c for c in features if training[c].dtype == object]
    encode = ColumnTransformer(
        [("onehot", OneHotEncoder(handle_unknown="ignore"), text)], remainder=StandardScaler()
    )
    model = Pipeline([("encode", encode), ("logistic", LogisticRegression(max_iter=300))])
    return model.fit(training[features], training[TARGET])


def fast_policy(directory: Path) -> Path:
    text = (PACKAGED_POLICIES / "high.yaml").read_text()
    path = directory / "high.yaml"
    path.write_text(
        text.replace("sampleSize: 2000", "sampleSize: 100").replace("samples: 200,", "samples: 50,")
    )
    return path


def timed(run: object, repeat: int) -> list[float]:
    seconds = []
    for _ in range(repeat):
        started = time.perf_counter()
        run()  # type: ignore[operator]
        seconds.append(time.perf_counter() - started)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--policy", type=Path, help="default: high-risk, smaller samples")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as temporary:
        policy_file = args.policy or fast_policy(Path(temporary))
        requests = inputs(Path(temporary), policy_file)
        policy = files.load_policy(policy_file)
        caches = iter(range(2 * args.repeat))
        for model, request in requests.items():
            warm = IsolatedChecks(compiled_code=Path(temporary) / f"numba-{len(rows)}")
            reference = judge(policy, request, files)  # warms the in-process imports
            child = warm(policy, request)  # starts the zygote, fills the cache
            assert [r.model_dump(exclude={"duration_seconds"}) for r in child.results] == [
                r.model_dump(exclude={"duration_seconds"}) for r in reference.results
            ], "the child and the server judged differently"
            inside = timed(partial(judge, policy, request, files), args.repeat)
            outside = timed(partial(warm, policy, request), args.repeat)
            starting = timed(partial(first_job, policy, request, temporary, caches), args.repeat)
            rows.append((model, inside, outside, starting))
        count = evaluation_rows(request)
    print(f"python {sys.version.split()[0]}, {platform.platform()}; {args.repeat} runs each")
    print(f"policy {policy.metadata.name} v{policy.metadata.version}; {count:,} evaluation rows\n")
    print("| model | variant | median s | min s | max s |")
    print("|---|---|---:|---:|---:|")
    for model, inside, outside, starting in rows:
        variants = (
            ("in-process (warm)", inside),
            ("isolated job, forked from a warm zygote", outside),
            ("isolated job, a service's first (new zygote, empty cache)", starting),
        )
        for name, seconds in variants:
            print(
                f"| {model} | {name} | {statistics.median(seconds):.2f} | {min(seconds):.2f} "
                f"| {max(seconds):.2f} |"
            )
    for model, inside, outside, starting in rows:
        extra = statistics.median(outside) - statistics.median(inside)
        ratio = statistics.median(outside) / statistics.median(inside)
        start = statistics.median(starting) - statistics.median(outside)
        print(
            f"\n{model}: isolation {extra:+.2f} s per job ({ratio:.2f}x in-process); "
            f"a zygote's start costs the first job {start:.2f} s more (medians)"
        )


def first_job(
    policy: PromotionPolicy, request: GateRequest, temporary: str, caches: Iterator[int]
) -> None:
    """A service's first job: a zygote of its own (one per numba cache), a new cache."""
    IsolatedChecks(compiled_code=Path(temporary) / f"numba-cold-{next(caches)}")(policy, request)


def evaluation_rows(request: GateRequest) -> int:
    import pyarrow.parquet as pq

    return int(pq.read_metadata(request.data).num_rows)


if __name__ == "__main__":
    main()
