"""The README's first command: two real models, two verdicts, both recorded."""

from __future__ import annotations

from pathlib import Path

import pytest

from governance.demo import run_demo
from governance.domain.verdict import Verdict
from governance.store.database import make_engine
from governance.store.repository import list_decisions


def test_demo_blocks_the_model_using_sex_and_passes_the_reweighed_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("GOVERNANCE_DATABASE_URL", raising=False)
    steps: list[str] = []
    url, runs = run_demo(tmp_path, progress=steps.append)

    verdicts = {run.outcome.manifest.model_name: run.outcome.manifest.decision for run in runs}
    assert verdicts["income-full"].verdict is Verdict.BLOCKED
    assert [b.check_id for b in verdicts["income-full"].blocking] == ["fairness"]
    assert verdicts["income-reweighed"].verdict is Verdict.PASS
    for run in runs:
        name = f"{run.outcome.manifest.model_name}-v{run.outcome.manifest.model_version}"
        assert {p.name for p in run.evidence.iterdir()} == {
            "manifest.json", "junit.xml", "summary.md",
            f"decision-{name}.pdf", f"bias-audit-{name}.pdf",
        }  # fmt: skip
        assert {p.name for p in run.reports} == {f"decision-{name}.pdf", f"bias-audit-{name}.pdf"}
        assert all(p.read_bytes().startswith(b"%PDF-1.7") for p in run.reports)
    assert url == f"sqlite:///{(tmp_path / 'governance.db').resolve()}"
    recorded = list_decisions(make_engine(url))
    assert sorted((d["model"], d["verdict"]) for d in recorded) == [
        ("income-full", "blocked"),
        ("income-reweighed", "pass"),
    ]
    assert any(step.startswith("Training income-full") for step in steps)
