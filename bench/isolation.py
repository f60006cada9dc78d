"""What running a check job outside the server costs: one request's checks in-process
against the same checks through `IsolatedChecks` (a fork of a warm zygote, scrubbed
environment, memory cap, answer over a socket).

Inputs: the demo's `income-reweighed` model (skops) trained on UCI Adult, its test split
as the evaluation data and its training split as the reference, judged under the shipped
high-risk policy with the tests' smaller samples (SHAP on 100 rows, 50 bootstrap draws:
the same checks, seconds instead of a minute), or under `--policy`. Each variant runs
`--repeat` times; the median and the spread are printed as a Markdown table. The
in-process variant is timed warm (libraries imported once, as in a long-running server).
The isolated job runs twice over: forked from a zygote that is already warm (every job of
a running service but its first), and as a service's first job (a new zygote, with a new,
empty numba cache, so it imports and compiles before it forks).

    PYTHONPATH=$PWD .venv/bin/python bench/isolation.py --repeat 5
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import skops.io
from sklearn.model_selection import train_test_split

from connectors import files
from connectors.adult import TARGET, load_adult
from governance.demo import MODELS, SEED, train
from governance.resources import PACKAGED_POLICIES
from governance.services.gate import judge
from governance.services.isolation import IsolatedChecks
from governance.services.ports import GateRequest


def inputs(directory: Path, policy_file: Path) -> GateRequest:
    adult = load_adult()
    training, evaluation = train_test_split(
        adult, test_size=0.3, random_state=SEED, stratify=adult[TARGET]
    )
    training.to_parquet(directory / "train.parquet", index=False)
    evaluation.to_parquet(directory / "test.parquet", index=False)
    spec = next(s for s in MODELS if s.name == "income-reweighed" and s.version == "1")
    skops.io.dump(train(spec, training), directory / "model.skops")
    return GateRequest(
        policy=policy_file,
        data=directory / "test.parquet",
        target=TARGET,
        model=directory / "model.skops",
        reference=directory / "train.parquet",
        model_name="income",
        model_version="1",
    )


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
    with tempfile.TemporaryDirectory() as temporary:
        policy_file = args.policy or fast_policy(Path(temporary))
        request = inputs(Path(temporary), policy_file)
        policy = files.load_policy(policy_file)
        warm = IsolatedChecks(compiled_code=Path(temporary) / "numba")
        reference = judge(policy, request, files)  # warms the in-process imports
        child = warm(policy, request)  # starts the zygote, fills the cache
        assert [r.model_dump(exclude={"duration_seconds"}) for r in child.results] == [
            r.model_dump(exclude={"duration_seconds"}) for r in reference.results
        ], "the child and the server judged differently"
        inside = timed(lambda: judge(policy, request, files), args.repeat)
        outside = timed(lambda: warm(policy, request), args.repeat)
        caches = iter(range(args.repeat))

        def first_job() -> None:  # a zygote of its own: one per numba cache
            cache = Path(temporary) / f"numba-cold-{next(caches)}"
            IsolatedChecks(compiled_code=cache)(policy, request)

        starting = timed(first_job, args.repeat)
        rows = evaluation_rows(request)
    print(f"python {sys.version.split()[0]}, {platform.platform()}; {args.repeat} runs each")
    print(f"policy {policy.metadata.name} v{policy.metadata.version}; {rows:,} evaluation rows\n")
    print("| variant | median s | min s | max s |")
    print("|---|---:|---:|---:|")
    variants = (
        ("in-process (warm)", inside),
        ("isolated job, forked from a warm zygote", outside),
        ("isolated job, a service's first (new zygote, empty cache)", starting),
    )
    for name, seconds in variants:
        print(
            f"| {name} | {statistics.median(seconds):.2f} | {min(seconds):.2f} "
            f"| {max(seconds):.2f} |"
        )
    extra = statistics.median(outside) - statistics.median(inside)
    print(f"\nisolation overhead: {extra:+.2f} s per job (median against median)")
    ratio = statistics.median(outside) / statistics.median(inside)
    print(f"isolated / in-process: {ratio:.2f}x")
    start = statistics.median(starting) - statistics.median(outside)
    print(f"a zygote's start costs the first job {start:.2f} s more (median against median)")


def evaluation_rows(request: GateRequest) -> int:
    import pyarrow.parquet as pq

    return int(pq.read_metadata(request.data).num_rows)


if __name__ == "__main__":
    main()
