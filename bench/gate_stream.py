"""Benchmark: the gate on data bigger than memory, streamed and on Dask, against its floor.

    .venv/bin/python bench/gate_stream.py [--rows 20000000] [--part-rows 1000000] [--out DIR]

1. Writes (seeded, once) an evaluation and a reference data set of `--rows` rows each as
   Parquet directories of `--part-rows`-row files, with bench/gate_1m.py's generator (20
   numeric and 5 categorical features, a binary label), its 200-tree LightGBM model and its
   policy with all five check types.
2. Times, each as a user runs it (`governance gate`, a child process; peak RSS from wait4):
   - the in-memory gate on the first 1M rows (`--executor memory`), `--repeat` times;
   - the streamed gate on all rows (`--executor streamed`);
   - the gate on a Dask LocalCluster of 2 workers with 2 GiB each (`--dask local`);
   - the floor: the model's own `predict_proba` over the same rows, in batches read by
     Arrow (reading not counted), for 1M rows and for all.
3. Prints the table and writes it into bench/RESULTS.md ("Issue 16" section).

Exits 1 if the streamed and Dask verdicts differ, or if a figure that is a count differs.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

import gate_1m as base  # noqa: E402  # the generator, model and policy of the 1M benchmark

RESULTS_MD = ROOT / "bench" / "RESULTS.md"
BEGIN, END = "<!-- gate_stream.py begin -->", "<!-- gate_stream.py end -->"
GIB = 1024**3


def prepare(out: Path, rows: int, part_rows: int) -> dict[str, Path]:
    """The two data sets (one file per part), the 1M-row single files, model and policy."""
    paths = {
        "current": out / f"current_{rows}",
        "reference": out / f"reference_{rows}",
        "current_1m": out / "current_part0.parquet",
        "reference_1m": out / "reference_part0.parquet",
        "model": out / "model.skops",
        "policy": out / "policy.yaml",
    }
    out.mkdir(parents=True, exist_ok=True)
    base.write_policy(paths["policy"])
    parts = rows // part_rows
    for name, current in (("current", True), ("reference", False)):
        folder = paths[name]
        folder.mkdir(exist_ok=True)
        for part in range(parts):
            target = folder / f"part-{part:04d}.parquet"
            if target.exists():
                continue
            print(f"writing {target.name} of {name} ({part + 1}/{parts})", flush=True)
            base.make_frame(part_rows, current, part).to_parquet(
                target, index=False, row_group_size=131_072
            )
        single = paths[f"{name}_1m"]
        if not single.exists():
            single.write_bytes((folder / "part-0000.parquet").read_bytes())
    if not paths["model"].exists():
        import pandas as pd

        train = pd.read_parquet(paths["reference_1m"]).sample(
            n=base.TRAIN_ROWS, random_state=base.SEED
        )
        print(f"training LightGBM ({base.TREES} trees) on {len(train):,} rows", flush=True)
        base.save_model(base.train_model(train), paths["model"])
    return paths


def gate(
    paths: dict[str, Path], out: Path, name: str, data: str, reference: str, *extra: str
) -> dict[str, Any]:
    evidence = out / f"{name}.json"
    evidence.unlink(missing_ok=True)
    command = [
        str(base.BIN / "governance"), "gate",
        "--policy", str(paths["policy"]), "--model", str(paths["model"]),
        "--data", str(paths[data]), "--reference", str(paths[reference]),
        "--target", "label", "--json", str(evidence), *extra,
    ]  # fmt: skip
    busy = base.wait_until_quiet()
    child = base.spawn(command, out / name)
    assert child is not None
    print(
        f"  {name}: exit {child.exit_code}, {child.wall:.1f} s, "
        f"peak RSS {child.peak_rss_bytes / GIB:.2f} GiB",
        flush=True,
    )
    if child.exit_code not in (0, 1):
        print((out / f"{name}.err").read_text()[-3000:])
        raise SystemExit(f"{name} failed")
    manifest = json.loads(evidence.read_text())
    return {"wall": child.wall, "rss": child.peak_rss_bytes, "busy": busy, "manifest": manifest}


FLOOR = """
import sys, time, json
import pyarrow.dataset as ds, skops.io
path, model_path = sys.argv[1], sys.argv[2]
model = skops.io.load(model_path, trusted=skops.io.get_untrusted_types(file=model_path))
features = list(model.feature_names_in_)
seconds, rows = 0.0, 0
for batch in ds.dataset(path, format="parquet").to_batches(columns=features, batch_size=262144):
    frame = batch.to_pandas()
    started = time.perf_counter()
    model.predict_proba(frame)
    seconds += time.perf_counter() - started
    rows += len(frame)
print(json.dumps({"seconds": seconds, "rows": rows}))
"""


def floor(path: Path, model: Path) -> dict[str, float]:
    """The model's own prediction over every row: what no gate can go below."""
    base.wait_until_quiet()
    done = subprocess.run(
        [str(base.BIN / "python"), "-c", FLOOR, str(path), str(model)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    result: dict[str, float] = json.loads(done.stdout)
    print(
        f"  floor on {path.name}: {result['seconds']:.1f} s for {result['rows']:,} rows", flush=True
    )
    return result


def counts_agree(one: dict[str, Any], other: dict[str, Any]) -> list[str]:
    """Figures that are counts (fairness, data quality, label metrics) must be equal."""
    problems = []
    for first, second in zip(one["results"], other["results"], strict=True):
        if first["status"] != second["status"]:
            problems.append(f"{first['id']}: {first['status']} vs {second['status']}")
        if first["type"] in ("fairness", "data_quality"):
            a = json.dumps(
                {k: v for k, v in first["metrics"].items() if k != "statistics"}, sort_keys=True
            )
            b = json.dumps(
                {k: v for k, v in second["metrics"].items() if k != "statistics"}, sort_keys=True
            )
            if a != b:
                problems.append(f"{first['id']}: figures differ")
        if first["type"] == "performance":
            for name in ("accuracy", "precision", "recall", "f1"):
                if abs(first["metrics"][name] - second["metrics"][name]) > 1e-12:
                    problems.append(f"{first['id']}: {name} differs")
    return problems


def sketch_note(manifest: dict[str, Any]) -> str:
    notes = []
    for result in manifest["results"]:
        for statistic in result["metrics"].get("statistics", []):
            if statistic["method"] == "sketch":
                notes.append(
                    f"{statistic['statistic'].split(' of ')[0]} ≤ {statistic['bound']:.1e}"
                )
    return "; ".join(notes) or "none"


BIG_BEGIN, BIG_END = (
    "<!-- gate_stream.py streamed-only begin -->",
    "<!-- gate_stream.py streamed-only end -->",
)


def streamed_only(paths: dict[str, Path], out: Path, rows: int) -> int:
    """The streamed gate alone at a size too big to repeat: its wall time and peak RSS."""
    run = gate(paths, out, f"streamed_{rows}", "current", "reference", "--executor", "streamed")
    line = (
        f"{BIG_BEGIN}\nStreamed at {rows:,} rows ({datetime.now(UTC):%Y-%m-%d %H:%M} UTC, one "
        f"run, `--streamed-only`): {run['wall']:.0f} s ({rows / run['wall']:,.0f} rows/s), "
        f"peak RSS {run['rss'] / GIB:.2f} GiB, verdict "
        f"{run['manifest']['decision']['verdict']}; sketched: {sketch_note(run['manifest'])}."
        f"\n{BIG_END}"
    )
    print(line)
    text = RESULTS_MD.read_text(encoding="utf-8")
    if BIG_BEGIN in text:
        text = text[: text.index(BIG_BEGIN)] + line + text[text.index(BIG_END) + len(BIG_END) :]
    else:
        text = text.replace(END, f"{END}\n\n{line}", 1)
    RESULTS_MD.write_text(text, encoding="utf-8")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=20_000_000)
    parser.add_argument("--part-rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--out", type=Path, default=ROOT / "bench-data" / "stream")
    parser.add_argument("--no-dask", action="store_true")
    parser.add_argument(
        "--streamed-only",
        action="store_true",
        help="only the streamed gate at --rows (the 100M run): a line under the table",
    )
    args = parser.parse_args()
    paths = prepare(args.out, args.rows, args.part_rows)
    if args.streamed_only:
        return streamed_only(paths, args.out, args.rows)

    print("in memory, 1M rows:", flush=True)
    memory = min(
        (
            gate(
                paths,
                args.out,
                f"memory_1m_{i}",
                "current_1m",
                "reference_1m",
                "--executor",
                "memory",
            )
            for i in range(args.repeat)
        ),
        key=lambda run: run["wall"],
    )
    floor_1m = min(
        (floor(paths["current_1m"], paths["model"]) for _ in range(args.repeat)),
        key=lambda f: f["seconds"],
    )
    print(f"streamed, {args.rows:,} rows:", flush=True)
    streamed = gate(paths, args.out, "streamed", "current", "reference", "--executor", "streamed")
    dask = None
    if not args.no_dask:
        print(f"Dask LocalCluster (2 workers, 2 GiB each), {args.rows:,} rows:", flush=True)
        dask = gate(paths, args.out, "dask", "current", "reference", "--dask", "local")
    floor_all = floor(paths["current"], paths["model"])

    problems = counts_agree(streamed["manifest"], dask["manifest"]) if dask else []
    rows = args.rows
    memory_rate = 1_000_000 / memory["wall"]
    streamed_rate = rows / streamed["wall"]
    cpu = base.machine().get("cpu", "this machine")

    def row(name: str, count: int, run: dict[str, Any], floor_seconds: float, note: str) -> str:
        return (
            f"| {name} | {count:,} | {run['wall']:.1f} s | {count / run['wall']:,.0f} | "
            f"{run['rss'] / GIB:.2f} GiB{note} | {run['wall'] / floor_seconds:.2f} "
            f"({floor_seconds:.1f} s) | {run['manifest']['decision']['verdict']} |"
        )

    lines = [
        BEGIN,
        f"Run {datetime.now(UTC):%Y-%m-%d %H:%M} UTC by `bench/gate_stream.py --rows {rows}` on "
        f"{cpu}: 2 cores, shared and noisy; each {rows:,}-row run is run once (minutes "
        f"each), the 1M runs and floors are the best of {args.repeat}.",
        "",
        "| run | rows | wall | rows/s | peak RSS (gate process) | × the model's own "
        "prediction (its time) | verdict |",
        "|---|---:|---:|---:|---:|---:|---|",
        row("in memory", 1_000_000, memory, floor_1m["seconds"], ""),
        row("streamed", rows, streamed, floor_all["seconds"], ""),
    ]
    if dask:
        note = " (client; 2 workers capped at 2 GiB each)"
        lines.append(row("Dask LocalCluster", rows, dask, floor_all["seconds"], note))
    lines += [
        "",
        f"- Streamed time per row over the in-memory path's at 1M: "
        f"{memory_rate / streamed_rate:.2f} (target ≤ 1.5).",
        f"- Sketched statistics at {rows:,} rows, with their bounds: "
        f"{sketch_note(streamed['manifest'])}.",
    ]
    if dask:
        same = "the same" if not problems else f"DIFFERENT ({'; '.join(problems)})"
        lines.append(
            f"- Dask against streamed: {dask['wall'] / streamed['wall']:.2f}× the wall time; "
            f"verdicts and counts {same}."
        )
    lines.append(END)
    table = "\n".join(lines)
    print(table)
    text = RESULTS_MD.read_text(encoding="utf-8")
    if BEGIN in text:
        text = text[: text.index(BEGIN)] + table + text[text.index(END) + len(END) :]
    else:
        text = (
            text.rstrip()
            + "\n\n## Issue 16: data bigger than memory (bench/gate_stream.py)\n\n"
            + table
            + "\n"
        )
    RESULTS_MD.write_text(text, encoding="utf-8")
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
