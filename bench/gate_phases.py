"""Child process for bench/gate_1m.py: the gate's phases, timed in a fresh interpreter.

Runs `governance.services.gate.run_gate` exactly as `governance gate` does, in a new
process (so reading pays the same first-touch memory costs as the real CLI), and times:

- the interpreter start (from `--spawned-at`, the parent's `time.time()` at spawn);
- importing `governance.cli`, as the console script does;
- each phase, marked by run_gate's own `progress` callback;
- hashing and predicting, through thin timing wrappers around `connectors.files.sha256_file`
  and `governance.services.gate.predict` (the functions are called unchanged);
- rendering the JSON evidence and the decision table, as the CLI does afterwards.

`--lower-bounds` instead times, in a fresh process, pyarrow reading both files and
LightGBM predicting from a ready float64 matrix: the floors of the read and predict phases.
`--profile FILE` runs the gate under cProfile and writes the stats and a text summary.
Writes one JSON object to `--result`.
"""

from __future__ import annotations

import time

STARTED_AT = time.time()
STARTED = time.perf_counter()

import argparse  # noqa: E402 - the clock above must start before any import
import itertools  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402
from collections import defaultdict  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402


def wrap(module: Any, name: str, totals: dict[str, float]) -> None:
    """Replace `module.name` with the same function, timed into `totals[name]`."""
    original: Callable[..., Any] = getattr(module, name)

    def timed(*args: Any, **kwargs: Any) -> Any:
        started, calls = time.perf_counter(), totals["booster calls"]
        try:
            return original(*args, **kwargs)
        finally:
            totals[name] += time.perf_counter() - started
            totals[f"passes in {name}"] += totals["booster calls"] - calls

    setattr(module, name, timed)


def count_booster_passes(totals: dict[str, float]) -> None:
    """Count LightGBM's passes over the rows (`Booster.predict` calls) made while the gate's
    `predict` runs: a classifier's `predict` and `predict_proba` each make one."""
    import lightgbm

    original = lightgbm.Booster.predict

    def counted(self: Any, *args: Any, **kwargs: Any) -> Any:
        totals["booster calls"] += 1
        return original(self, *args, **kwargs)

    lightgbm.Booster.predict = counted  # type: ignore[method-assign]


def phases(args: argparse.Namespace) -> dict[str, Any]:
    """Run the gate in this process and return every phase's seconds."""
    imported = time.perf_counter()
    import governance.cli as cli

    seconds: dict[str, float] = {
        "interpreter start": STARTED_AT - args.spawned_at,
        "import governance.cli": time.perf_counter() - imported,
    }
    import governance.connectors.files as files
    from governance.reports import ci
    from governance.services import gate

    totals: dict[str, float] = defaultdict(float)
    wrap(files, "sha256_file", totals)
    counting = time.perf_counter()
    count_booster_passes(totals)  # imports lightgbm, which loading the model would import
    seconds["import lightgbm"] = time.perf_counter() - counting
    wrap(gate, "predict", totals)
    stamps: list[tuple[str, float]] = []
    request = gate.GateRequest(
        policy=args.policy,
        data=args.data,
        target="label",
        model=args.model,
        reference=args.reference,
    )
    started = time.perf_counter()
    outcome = gate.run_gate(
        request, files, None, progress=lambda step: stamps.append((step, time.perf_counter()))
    )
    stamps.append(("end", time.perf_counter()))
    seconds["run_gate total"] = stamps[-1][1] - started

    spans = {step: end - begin for (step, begin), (_, end) in itertools.pairwise(stamps)}
    seconds["load policy"] = spans["Loading policy"]
    # the files are hashed on a second thread while they are parsed: the span holds both
    seconds["read data + reference"] = spans["Reading data"]
    seconds["sha256 of the files"] = totals["sha256_file"]
    seconds["load model"] = spans["Loading model"]
    seconds["validate inputs"] = spans["Predicting"] - totals["predict"]
    seconds["predict"] = totals["predict"]
    seconds["LightGBM passes in predict"] = totals["passes in predict"]
    durations = {r.id: r.duration_seconds for r in outcome.manifest.results}
    overhead = 0.0
    for step, span in spans.items():
        if step.startswith("Check "):
            check_id = step.removeprefix("Check ").split(" ", 1)[0]
            seconds[f"check {check_id}"] = durations[check_id]
            overhead += span - durations[check_id]
    # the checks' modules (shap, fairlearn, scipy ...) are imported at the first check, and
    # the manifest is built after the last one: both fall between the checks' own clocks
    seconds["check imports + manifest"] = overhead

    rendered = time.perf_counter()
    args.json.write_text(ci.to_json(outcome.manifest), encoding="utf-8")
    cli.gate.show_decision(outcome.manifest)
    seconds["write JSON + print table"] = time.perf_counter() - rendered
    seconds["in-process total"] = time.perf_counter() - STARTED + seconds["interpreter start"]
    return {"seconds": seconds, "verdict": outcome.manifest.decision.verdict.value}


def lower_bounds(args: argparse.Namespace) -> dict[str, Any]:
    """pyarrow reading both files; LightGBM predicting from a ready float64 matrix."""
    import numpy as np
    import pandas as pd
    import pyarrow.parquet as pq
    import skops.io

    seconds: dict[str, float] = {}
    started = time.perf_counter()
    table = pq.read_table(args.data)
    pq.read_table(args.reference)
    seconds["read"] = time.perf_counter() - started

    model = skops.io.load(args.model, trusted=skops.io.get_untrusted_types(file=args.model))
    frame = table.to_pandas()
    columns = []
    for name in model.feature_names_in_:
        values = frame[name]
        if isinstance(values.dtype, pd.CategoricalDtype):
            columns.append(values.cat.codes.to_numpy().astype(np.float64))
        else:
            columns.append(values.to_numpy(dtype=np.float64))
    matrix = np.ascontiguousarray(np.column_stack(columns))
    started = time.perf_counter()
    model.booster_.predict(matrix)
    seconds["predict"] = time.perf_counter() - started
    return {"seconds": seconds}


def profile(args: argparse.Namespace) -> dict[str, Any]:
    """The gate under cProfile: stats to `--profile`, the top functions as text beside it."""
    import cProfile
    import io
    import pstats

    import governance.connectors.files as files
    from governance.services import gate

    request = gate.GateRequest(
        policy=args.policy, data=args.data, target="label", model=args.model,
        reference=args.reference,
    )  # fmt: skip
    profiler = cProfile.Profile()
    profiler.enable()
    gate.run_gate(request, files, None)
    profiler.disable()
    profiler.dump_stats(args.profile)
    text = io.StringIO()
    stats = pstats.Stats(profiler, stream=text).sort_stats("cumulative")
    stats.print_stats(45)
    text.write("\n\n=== by own time ===\n")
    stats.sort_stats("tottime").print_stats(30)
    Path(f"{args.profile}.txt").write_text(text.getvalue())
    return {"profile": str(args.profile)}


def main() -> None:
    parser = argparse.ArgumentParser(description="The gate's phases in a fresh process.")
    for name in ("policy", "data", "reference", "model", "json", "result"):
        parser.add_argument(f"--{name}", type=Path, required=name not in ("json",))
    parser.add_argument("--spawned-at", type=float, default=STARTED_AT)
    parser.add_argument("--lower-bounds", action="store_true")
    parser.add_argument("--profile", type=Path)
    args = parser.parse_args()
    if args.lower_bounds:
        result = lower_bounds(args)
    elif args.profile is not None:
        result = profile(args)
    else:
        result = phases(args)
    args.result.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
    # End the way the `governance` command does (governance.cli.main), so that the
    # measured teardown is the CLI's.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
