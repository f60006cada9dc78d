"""Policy-as-code: the `PromotionPolicy` schema, its validation and its content hash.

A policy is data written by a model-risk team, so every error must name the path of the
offending value (`checks[1].rules[0].min: …`) in words that say how to fix it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    model_validator,
)
from pydantic.alias_generators import to_camel

from governance.domain.errors import GovernanceError


class Schema(BaseModel):
    """Strict, immutable, camelCase in YAML and snake_case in Python."""

    model_config = ConfigDict(
        extra="forbid", alias_generator=to_camel, validate_by_name=True, frozen=True
    )


class Severity(StrEnum):
    BLOCKING = "blocking"
    WARNING = "warning"


FairnessMetric = Literal[
    "demographic_parity_difference",
    "demographic_parity_ratio",
    "equalized_odds_difference",
    "equalized_odds_ratio",
    "equal_opportunity_difference",
    "equal_opportunity_ratio",
]
ClassificationMetric = Literal["accuracy", "roc_auc", "f1", "precision", "recall"]
RegressionMetric = Literal["rmse", "mae", "r2"]
PerformanceMetric = Literal[ClassificationMetric, RegressionMetric]
DataQualityMetric = Literal["missing_share", "out_of_range_share", "unseen_category_share"]

LOWER_IS_BETTER: frozenset[str] = frozenset({"rmse", "mae"})


class Rule(Schema):
    """What any rule of a check may say beside its own test."""

    basis: str | None = Field(None, description="Why this rule exists: the regulation or standard.")
    severity: Severity | None = Field(None, description="Overrides the check's severity.")


class ThresholdRule(Rule):
    """`metric` must be at least `min` and/or at most `max`."""

    metric: str
    min: float | None = None
    max: float | None = None

    @model_validator(mode="after")
    def _has_bound(self) -> ThresholdRule:
        if self.min is None and self.max is None:
            raise ValueError("give `min`, `max` or both")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"`min` ({self.min}) is greater than `max` ({self.max})")
        return self

    @property
    def label(self) -> str:
        bounds = []
        if self.min is not None:
            bounds.append(f"≥ {self.min:g}")
        if self.max is not None:
            bounds.append(f"≤ {self.max:g}")
        return f"{self.metric} {' and '.join(bounds)}"


class FairnessRule(ThresholdRule):
    metric: FairnessMetric  # type: ignore[assignment]
    over: list[str] | None = Field(
        None,
        description="The sensitive features whose (intersectional) groups this rule compares. "
        "Default: every grouping the check computes.",
    )

    @property
    def label(self) -> str:
        suffix = f" over {' × '.join(self.over)}" if self.over else ""
        return super().label + suffix


class PerformanceRule(ThresholdRule):
    metric: PerformanceMetric  # type: ignore[assignment]


class DataQualityRule(ThresholdRule):
    metric: DataQualityMetric  # type: ignore[assignment]


class NoRegression(Schema):
    metric: PerformanceMetric
    tolerance: float = Field(0.0, ge=0)


class NoRegressionRule(Rule):
    """The candidate must not be worse than the champion by more than `tolerance`."""

    no_regression: NoRegression

    @property
    def label(self) -> str:
        spec = self.no_regression
        return f"{spec.metric} no worse than the champion by more than {spec.tolerance:g}"


class ProhibitedInTopK(Schema):
    features: list[str] = Field(min_length=1)
    k: int = Field(ge=1)


class ProhibitedInTopKRule(Rule):
    """Sensitive or proxy features must not be among the model's k most influential."""

    prohibited_in_top_k: ProhibitedInTopK

    @property
    def label(self) -> str:
        spec = self.prohibited_in_top_k
        return f"none of {', '.join(spec.features)} in the top {spec.k} features by mean |SHAP|"


class DriftShare(Schema):
    max: float = Field(ge=0, le=1)


class DriftShareRule(Rule):
    """At most this share of the columns may drift."""

    drift_share: DriftShare

    @property
    def label(self) -> str:
        return f"share of drifted columns ≤ {self.drift_share.max:g}"


class NoDriftIn(Schema):
    columns: list[str] = Field(min_length=1)


class NoDriftInRule(Rule):
    """These named columns must not drift at all."""

    no_drift_in: NoDriftIn

    @property
    def label(self) -> str:
        return f"no drift in {', '.join(self.no_drift_in.columns)}"


class SchemaMatch(Schema):
    allow_extra_columns: bool = True
    allow_dtype_changes: bool = False


class SchemaMatchRule(Rule):
    """The data has the reference's columns with the same kinds of values."""

    schema_match: SchemaMatch

    @property
    def label(self) -> str:
        return "columns and types match the reference"


RULE_KEYS: tuple[str, ...] = (
    "metric",
    "noRegression",
    "prohibitedInTopK",
    "driftShare",
    "noDriftIn",
    "schemaMatch",
)


def _rule_tag(value: Any) -> str | None:
    """Pick the rule class by the key that names it, so errors point into the right rule."""
    if isinstance(value, BaseModel):
        return f"{_KEY_OF[type(value)]} rule"
    if not isinstance(value, Mapping):
        return None
    for key in RULE_KEYS:
        if key in value:
            return f"{key} rule"
    return None


_KEY_OF: dict[type, str] = {
    FairnessRule: "metric",
    PerformanceRule: "metric",
    DataQualityRule: "metric",
    NoRegressionRule: "noRegression",
    ProhibitedInTopKRule: "prohibitedInTopK",
    DriftShareRule: "driftShare",
    NoDriftInRule: "noDriftIn",
    SchemaMatchRule: "schemaMatch",
}

ExplainabilityRule = Annotated[
    Annotated[ProhibitedInTopKRule, Tag("prohibitedInTopK rule")], Discriminator(_rule_tag)
]
DriftRule = Annotated[
    Annotated[DriftShareRule, Tag("driftShare rule")]
    | Annotated[NoDriftInRule, Tag("noDriftIn rule")],
    Discriminator(_rule_tag),
]
DataQualityRuleKind = Annotated[
    Annotated[SchemaMatchRule, Tag("schemaMatch rule")]
    | Annotated[DataQualityRule, Tag("metric rule")],
    Discriminator(_rule_tag),
]
PerformanceRuleKind = Annotated[
    Annotated[PerformanceRule, Tag("metric rule")]
    | Annotated[NoRegressionRule, Tag("noRegression rule")],
    Discriminator(_rule_tag),
]


class CheckSpec(Schema):
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]*$", max_length=64)
    severity: Severity = Severity.BLOCKING
    description: str | None = None


class Bootstrap(Schema):
    samples: int = Field(200, ge=20, le=10_000)
    confidence: float = Field(0.95, gt=0, lt=1)
    seed: int = 0


class FairnessCheck(CheckSpec):
    type: Literal["fairness"]
    sensitive_features: list[str] = Field(min_length=1)
    intersectional: bool = False
    min_group_size: int = Field(30, ge=1)
    small_groups: Literal["error", "exclude"] = Field(
        "error",
        description="`error`: a group under minGroupSize stops the gate (exit 2); "
        "`exclude`: it is reported but left out of the comparisons.",
    )
    bootstrap: Bootstrap | None = None
    rules: list[FairnessRule] = Field(min_length=1)

    @model_validator(mode="after")
    def _over_names_sensitive_features(self) -> FairnessCheck:
        for index, rule in enumerate(self.rules):
            unknown = set(rule.over or ()) - set(self.sensitive_features)
            if unknown:
                raise ValueError(
                    f"rules[{index}].over names {sorted(unknown)}, which are not in "
                    f"sensitiveFeatures {self.sensitive_features}"
                )
            if rule.over and len(rule.over) > 1 and not self.intersectional:
                raise ValueError(
                    f"rules[{index}].over names several features: set `intersectional: true`"
                )
        return self


class ExplainabilityCheck(CheckSpec):
    type: Literal["explainability"]
    sample_size: int = Field(2000, ge=10, le=1_000_000)
    background_size: int = Field(100, ge=10, le=10_000)
    seed: int = 0
    rules: list[ExplainabilityRule] = Field(min_length=1)


class DriftCheck(CheckSpec):
    type: Literal["drift"]
    reference: Literal["training"] = "training"
    columns: list[str] | None = Field(None, description="Columns to test; default every feature.")
    rules: list[DriftRule] = Field(min_length=1)


class DataQualityCheck(CheckSpec):
    type: Literal["data_quality"]
    rules: list[DataQualityRuleKind] = Field(min_length=1)


class PerformanceCheck(CheckSpec):
    type: Literal["performance"]
    rules: list[PerformanceRuleKind] = Field(min_length=1)


CHECK_TYPES: tuple[str, ...] = (
    "fairness",
    "explainability",
    "drift",
    "data_quality",
    "performance",
)

AnyCheck = Annotated[
    FairnessCheck | ExplainabilityCheck | DriftCheck | DataQualityCheck | PerformanceCheck,
    Field(discriminator="type"),
]


class Metadata(Schema):
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$", max_length=100)
    version: int = Field(ge=1)
    regulations: list[str] = []
    description: str | None = None


class AppliesTo(Schema):
    risk_tier: Literal["low", "medium", "high"]
    targets: list[str] = Field(min_length=1)


class Approvals(Schema):
    quorum: int = Field(ge=1)
    roles: list[str] = Field(min_length=1)
    distinct_roles: bool = False
    forbid_self_approval: bool = True
    expires_after_days: int = Field(ge=1)

    @model_validator(mode="after")
    def _quorum_reachable(self) -> Approvals:
        if self.distinct_roles and self.quorum > len(self.roles):
            raise ValueError(
                f"quorum {self.quorum} needs {self.quorum} distinct roles but only "
                f"{len(self.roles)} are listed: lower `quorum` or add roles"
            )
        return self


class Waivers(Schema):
    allowed: bool
    approver_role: str | None = None
    max_days: int = Field(90, ge=1)

    @model_validator(mode="after")
    def _approver_when_allowed(self) -> Waivers:
        if self.allowed and not self.approver_role:
            raise ValueError("waivers are allowed: name the `approverRole` who grants them")
        return self


Schedule = Literal["hourly", "daily", "weekly"]
SCHEDULE_SECONDS: dict[str, int] = {"hourly": 3600, "daily": 86400, "weekly": 7 * 86400}


class Monitor(Schema):
    """One production check of a promoted version: the policy's check of the same type,
    run on the production predictions, on a schedule; a breach alerts, or revokes."""

    schedule: Schedule
    on_breach: Literal["alert", "revoke"]


class Monitoring(Schema):
    drift: Monitor | None = None
    performance: Monitor | None = Field(
        None, description="The performance check's floors, once outcomes arrive."
    )
    fairness: Monitor | None = Field(
        None, description="The fairness check, where sensitive attributes are logged."
    )
    window_days: int | None = Field(
        None, ge=1, le=366, description="Days of production data each check reads (30)."
    )
    min_rows: int | None = Field(
        None, ge=1, description="Fewer rows than this in the window: no verdict yet (200)."
    )
    retention_days: int = Field(
        183, ge=183, description="EU AI Act Art. 19 asks that logs be kept at least six months."
    )

    @property
    def monitors(self) -> dict[str, Monitor]:
        """The monitors the policy sets, by check type."""
        named = {"drift": self.drift, "performance": self.performance, "fairness": self.fairness}
        return {kind: monitor for kind, monitor in named.items() if monitor is not None}

    @property
    def window(self) -> int:
        return self.window_days or 30

    @property
    def minimum_rows(self) -> int:
        return self.min_rows or 200


BUILDER_NAME = r"^[a-z0-9][a-z0-9._-]{0,62}$"


class EvidenceRule(Schema):
    """Whether this tier takes checks run elsewhere on trust. By default (`rerun:
    required`) the service re-computes every check from the uploaded model and data before a
    request can be approved; `trustedBuilders` names the registered CI builders whose signed
    provenance is accepted instead."""

    rerun: Literal["required"] | None = None
    trusted_builders: list[Annotated[str, Field(pattern=BUILDER_NAME)]] | None = Field(
        None, min_length=1
    )

    @model_validator(mode="after")
    def _one_of(self) -> EvidenceRule:
        if (self.rerun is None) == (self.trusted_builders is None):
            raise ValueError(
                "give either `rerun: required` or `trustedBuilders: [name, ...]`, not both "
                "and not neither"
            )
        return self


class PromotionPolicy(Schema):
    api_version: Literal["governance/v1"]
    kind: Literal["PromotionPolicy"]
    metadata: Metadata
    applies_to: AppliesTo
    checks: list[AnyCheck] = Field(min_length=1)
    approvals: Approvals
    waivers: Waivers
    monitoring: Monitoring = Field(default_factory=Monitoring)
    evidence: EvidenceRule | None = None  # absent: `rerun: required` (absent keeps old hashes)

    @property
    def trusted_builders(self) -> tuple[str, ...]:
        """The CI builders whose provenance this policy accepts without a re-run."""
        return tuple(self.evidence.trusted_builders or ()) if self.evidence else ()

    @model_validator(mode="after")
    def _unique_check_ids(self) -> PromotionPolicy:
        seen: set[str] = set()
        for check in self.checks:
            if check.id in seen:
                raise ValueError(f"check id {check.id!r} is used twice: give each check its own id")
            seen.add(check.id)
        return self

    @model_validator(mode="after")
    def _monitors_have_checks(self) -> PromotionPolicy:
        kinds = {check.type for check in self.checks}
        for kind in self.monitoring.monitors:
            if kind not in kinds:
                raise ValueError(
                    f"monitoring.{kind}: the policy has no {kind} check to run in production; "
                    f"add one to `checks` or remove monitoring.{kind}"
                )
        return self

    def canonical_json(self) -> str:
        document = self.model_dump(mode="json", by_alias=True, exclude_none=True)
        return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)

    @property
    def content_hash(self) -> str:
        """sha256 of the canonical JSON: formatting and comments do not change it, rules do."""
        return hashlib.sha256(self.canonical_json().encode()).hexdigest()


class PolicyError(GovernanceError):
    """A policy document is invalid; `problems` lists each as `path: message`."""

    status = 422

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        super().__init__(f"{source}: invalid policy\n" + "\n".join(f"  {p}" for p in problems))


def parse_policy(document: Any, source: str = "policy") -> PromotionPolicy:
    """Validate a parsed YAML/JSON document; raise `PolicyError` listing every problem."""
    if not isinstance(document, Mapping):
        raise PolicyError(source, ["(top level): expected a mapping with apiVersion, kind, …"])
    try:
        return PromotionPolicy.model_validate(document)
    except ValidationError as exc:
        raise PolicyError(source, [_describe(error) for error in exc.errors()]) from None


def _is_union_tag(part: str, previous: int | str | None) -> bool:
    """pydantic puts the chosen union member in the location; the user never wrote it."""
    if part.endswith(" rule"):
        return True
    return isinstance(previous, int) and part in CHECK_TYPES


def _path(loc: tuple[int | str, ...]) -> str:
    path = ""
    previous: int | str | None = None
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif _is_union_tag(part, previous):
            continue
        else:
            path += f".{part}" if path else str(part)
        previous = part
    return path or "(top level)"


def _describe(error: Any) -> str:
    kind, loc, ctx = error["type"], error["loc"], error.get("ctx") or {}
    if kind == "extra_forbidden":
        message = "unknown key: remove it or check its spelling"
    elif kind == "missing":
        message = "required field is missing"
    elif kind == "union_tag_invalid" and str(ctx.get("tag")).endswith(" rule"):
        allowed = [t.strip("'")[: -len(" rule")] for t in str(ctx["expected_tags"]).split(", ")]
        keys = ", ".join(t for t in allowed if t in RULE_KEYS)
        message = f"a {ctx['tag'][: -len(' rule')]} rule does not fit this check: use one of {keys}"
    elif kind == "union_tag_invalid":
        loc = (*loc, "type")
        message = f"unknown check type {ctx.get('tag')!r}: use one of {', '.join(CHECK_TYPES)}"
    elif kind == "union_tag_not_found":
        if (loc and loc[-1] == "checks") or (len(loc) >= 2 and loc[-2] == "checks"):
            message = f"a check needs a `type`: one of {', '.join(CHECK_TYPES)}"
        else:
            message = f"unknown rule: start it with one of {', '.join(RULE_KEYS)}"
    elif kind in ("float_parsing", "float_type"):
        message = f"must be a number, not {error['input']!r}"
    elif kind in ("int_parsing", "int_type", "int_from_float"):
        message = f"must be a whole number, not {error['input']!r}"
    elif kind == "literal_error":
        message = f"{error['input']!r} is not allowed: use one of {ctx.get('expected')}"
    elif kind == "value_error":
        message = str(ctx.get("error", error["msg"]))
    else:
        message = error["msg"][0].lower() + error["msg"][1:]
    return f"{_path(tuple(loc))}: {message}"
