"""Benchmark: the explainability check's model-agnostic SHAP, with one OpenMP thread (as the
check runs it) and with the default threads, idle and with a second busy process.

    .venv/bin/python bench/shap_threads.py [--rows 100] [--repeat 3]

The demo's `income-reweighed` pipeline (one-hot encoding + HistGradientBoosting, whose
predict uses OpenMP) trained on UCI Adult; `--rows` rows explained with the check's own
permutation SHAP (`_agnostic_shap`: ~25 model calls of a few thousand rows each per row).
"Busy" starts a second process that spins on one core, as another check job or request
would. Prints seconds per run (best of `--repeat`) and the ratio default ÷ one thread;
checks that both give the same SHAP values.
"""

from __future__ import annotations

import argparse
import multiprocessing
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _spin(stop: multiprocessing.synchronize.Event) -> None:  # type: ignore[name-defined]
    while not stop.is_set():
        sum(range(10_000))


@contextmanager
def busy() -> Iterator[None]:
    stop = multiprocessing.Event()
    worker = multiprocessing.Process(target=_spin, args=(stop,))
    worker.start()
    try:
        yield
    finally:
        stop.set()
        worker.join()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    from sklearn.model_selection import train_test_split
    from threadpoolctl import threadpool_info, threadpool_limits

    import governance.checks.explainability as explainability
    from governance.checks import CheckInputs
    from governance.connectors.adult import TARGET, load_adult
    from governance.demo import MODELS, SEED, train
    from governance.domain.policy import ExplainabilityCheck

    adult = load_adult()
    training, evaluation = train_test_split(
        adult, test_size=0.3, random_state=SEED, stratify=adult[TARGET]
    )
    spec_model = next(m for m in MODELS if m.name == "income-reweighed")
    model = train(spec_model, training)
    features = spec_model.features
    spec = ExplainabilityCheck.model_validate(
        {"id": "shap", "type": "explainability", "sampleSize": args.rows,
         "rules": [{"prohibitedInTopK": {"features": ["sex"], "k": 5}}]}
    )  # fmt: skip
    zeros = np.zeros(len(evaluation))
    inputs = CheckInputs(
        data=evaluation, features=features, target=TARGET, y_true=zeros, y_pred=zeros,
        task="classification", model=model,
    )  # fmt: skip
    sample = evaluation[features].sample(n=args.rows, random_state=0)
    openmp = [p for p in threadpool_info() if p["user_api"] == "openmp"]
    threads = openmp[0]["num_threads"] if openmp else "?"

    # The check limits itself to one thread; to measure the default, lift that limit.
    original = explainability.threadpool_limits

    def timed(one_thread: bool) -> tuple[float, np.ndarray]:
        explainability.threadpool_limits = (  # type: ignore[assignment]
            original if one_thread else (lambda **_: nullcontext())
        )
        best, values = float("inf"), np.empty(0)
        for _ in range(args.repeat):
            start = time.perf_counter()
            _, values = explainability._agnostic_shap(spec, inputs, sample)
            best = min(best, time.perf_counter() - start)
        explainability.threadpool_limits = original
        return best, values

    print(f"SHAP on {args.rows} rows, best of {args.repeat}; OpenMP default threads: {threads}")
    print("| machine | one thread (s) | default threads (s) | default ÷ one |")
    print("|---|---:|---:|---:|")
    for label, context in (("idle", nullcontext), ("one core busy", busy)):
        with context(), threadpool_limits(limits=None):
            one, one_values = timed(True)
            default, default_values = timed(False)
        assert np.allclose(one_values, default_values, atol=1e-12), "the SHAP values differ"
        print(f"| {label} | {one:.2f} | {default:.2f} | {default / one:.1f}× |")


if __name__ == "__main__":
    main()
