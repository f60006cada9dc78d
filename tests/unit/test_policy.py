"""Policy-as-code: the shipped policies validate; every error names its path."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from governance.cli import app
from governance.domain.policy import PolicyError, parse_policy

POLICIES = Path(__file__).resolve().parents[2] / "policies"
runner = CliRunner()


@pytest.fixture
def document() -> dict:
    return yaml.safe_load((POLICIES / "high.yaml").read_text())


def problems(document: dict) -> list[str]:
    with pytest.raises(PolicyError) as caught:
        parse_policy(document)
    return caught.value.problems


@pytest.mark.parametrize("tier", ["low", "medium", "high"])
def test_shipped_policies_are_valid(tier: str) -> None:
    result = runner.invoke(app, ["policy", "validate", str(POLICIES / f"{tier}.yaml")])
    assert result.exit_code == 0, result.output
    assert f"risk tier {tier}" in result.output


def test_content_hash_ignores_formatting_but_not_rules(document: dict) -> None:
    policy = parse_policy(document)
    reordered = dict(reversed(list(copy.deepcopy(document).items())))
    assert parse_policy(reordered).content_hash == policy.content_hash
    document["checks"][4]["rules"][0]["min"] = 0.86
    assert parse_policy(document).content_hash != policy.content_hash


def test_unknown_check_type(document: dict) -> None:
    document["checks"][1]["type"] = "explain"
    assert problems(document) == [
        "checks[1].type: unknown check type 'explain': use one of fairness, explainability, "
        "drift, data_quality, performance"
    ]


def test_bad_threshold(document: dict) -> None:
    document["checks"][4]["rules"][0]["min"] = "high"
    assert problems(document) == ["checks[4].rules[0].min: must be a number, not 'high'"]


def test_min_above_max(document: dict) -> None:
    document["checks"][0]["rules"][0]["min"] = 0.5
    assert problems(document) == ["checks[0].rules[0]: `min` (0.5) is greater than `max` (0.05)"]


def test_missing_field(document: dict) -> None:
    del document["approvals"]
    del document["checks"][0]["sensitiveFeatures"]
    assert problems(document) == [
        "checks[0].sensitiveFeatures: required field is missing",
        "approvals: required field is missing",
    ]


def test_unknown_key_and_unknown_metric(document: dict) -> None:
    document["checks"][0]["rules"][1]["maximum"] = 1
    document["checks"][4]["rules"][0]["metric"] = "auc"
    found = problems(document)
    assert "checks[0].rules[1].maximum: unknown key: remove it or check its spelling" in found
    assert any(p.startswith("checks[4].rules[0].metric: 'auc' is not allowed") for p in found)


def test_unknown_rule_kind(document: dict) -> None:
    document["checks"][2]["rules"].append({"driftRatio": {"max": 1}})
    assert problems(document) == [
        "checks[2].rules[1]: unknown rule: start it with one of metric, noRegression, "
        "prohibitedInTopK, driftShare, noDriftIn, schemaMatch"
    ]


def test_rule_of_the_wrong_kind_for_its_check(document: dict) -> None:
    document["checks"][2]["rules"] = [{"metric": "roc_auc", "min": 0.5}]
    assert problems(document) == [
        "checks[2].rules[0]: a metric rule does not fit this check: "
        "use one of driftShare, noDriftIn"
    ]


def test_unreachable_quorum(document: dict) -> None:
    document["approvals"]["quorum"] = 3
    assert problems(document) == [
        "approvals: quorum 3 needs 3 distinct roles but only 2 are listed: "
        "lower `quorum` or add roles"
    ]


def test_duplicate_check_ids(document: dict) -> None:
    document["checks"][1]["id"] = "fairness"
    assert problems(document) == [
        "(top level): check id 'fairness' is used twice: give each check its own id"
    ]


def test_validate_cli_lists_every_error_and_exits_2(tmp_path: Path, document: dict) -> None:
    document["checks"][4]["rules"][0]["min"] = "high"
    document["kind"] = "Policy"
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(document))
    result = runner.invoke(app, ["policy", "validate", str(POLICIES / "low.yaml"), str(bad)])
    assert result.exit_code == 2
    assert "checks[4].rules[0].min: must be a number" in result.output
    assert "kind: 'Policy' is not allowed" in result.output


def test_validate_cli_on_broken_yaml_and_missing_file(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("checks: [\n  - {id: a\n")
    result = runner.invoke(app, ["policy", "validate", str(broken), str(tmp_path / "nope.yaml")])
    assert result.exit_code == 2
    assert "not valid YAML" in result.output
    assert "file not found" in result.output
