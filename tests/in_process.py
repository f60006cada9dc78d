"""Check jobs in the test process itself, for the tests whose subject is what the service
does with a verdict, not how the checks are kept away from its keys.

A real check job starts a fresh interpreter that imports the ML stack and loads shap's
compiled loops: several seconds of CPU for every job, which many tests pay many times
over. This runner calls the same `judge` on the same policy document (through its
canonical JSON, as the child gets it) and hands back the manifest through JSON, as the
child does, so the workflow sees what it would see from a child. The isolation itself,
the child's environment, its limits and its crashes, is tested against the real runner
(`tests/integration/test_isolation.py`, `test_service_jobs.py`) and in every served test.
"""

from __future__ import annotations

import json
from pathlib import Path

from governance.connectors import files
from governance.domain.evidence import EvidenceManifest
from governance.domain.policy import PromotionPolicy, parse_policy
from governance.services.gate import judge
from governance.services.ports import Execution, GateRequest


class InProcessChecks:
    """Takes `IsolatedChecks`' arguments and ignores the child's limits."""

    def __init__(
        self,
        memory_mb: int = 4096,
        timeout_seconds: float = 900.0,
        compiled_code: Path | None = None,
        execution: Execution | None = None,
    ) -> None:
        self.memory_mb = memory_mb
        self.execution = execution or Execution()

    def __call__(
        self, policy: PromotionPolicy, request: GateRequest, allow_pickle: bool = False
    ) -> EvidenceManifest:
        pinned = parse_policy(json.loads(policy.canonical_json()))
        source = files if allow_pickle else files.SKOPS_ONLY
        manifest = judge(pinned, request, source, execution=self.execution)
        return EvidenceManifest.model_validate(json.loads(manifest.model_dump_json()))
