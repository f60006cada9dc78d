"""Read-only pages of the console beyond the requests: the audit trail by page and its chain
check, every policy version the service knows (in force or pinned by a request), the line
diff of two of them, and a pasted or uploaded draft judged for impact. Pure reads: each
function opens read-only units of work (`ports.CatalogViews`) and commits nothing."""

from __future__ import annotations

import difflib
import json
import re
import threading
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import yaml

from governance.domain.browsing import AuditFilter
from governance.domain.errors import InputError, NotFoundError
from governance.domain.policy import PromotionPolicy, parse_policy
from governance.services.audit import Published, chain_status
from governance.services.browse import Page
from governance.services.impact import ImpactReport, policy_impact
from governance.services.ports import ArtifactSource, UnitOfWorkFactory

AUDIT_PAGE_SIZE = 100
SHA256 = re.compile(r"^[0-9a-f]{64}$")
MAX_SHOWN_PROBLEMS = 50

# --- the audit trail -----------------------------------------------------------------


def audit_listing(
    units: UnitOfWorkFactory, filters: AuditFilter, page_number: int = 1, seq: int | None = None
) -> dict[str, Any]:
    """One page of 100 events, newest first; with `seq`, the page that holds that event
    (under the same filters), so a link to one event lands on its neighbours."""
    with units(read_only=True) as uow:
        if seq is not None:
            before = uow.catalog.audit_position(seq, filters)
            if before is None:
                raise NotFoundError(f"audit event {seq}", "follow a link from a request's events")
            page_number = before // AUDIT_PAGE_SIZE + 1
        actions = uow.catalog.audit_actions()
        page = Page(page_number, AUDIT_PAGE_SIZE)
        found = uow.catalog.audit_page(filters, page)
    items = [
        {
            **event,
            "time": datetime.fromisoformat(event["time"]),
            "hash": chained.hash,
            "prevHash": chained.prev_hash,
            "payloadText": json.dumps(
                event["payload"], indent=2, sort_keys=True, ensure_ascii=False
            ),
        }
        for chained in found.items
        for event in [chained.event.model_dump(mode="json")]
    ]
    total = found.total
    return {
        "items": items,
        "total": total,
        "page": page.number,
        "size": page.size,
        "pages": max(1, -(-total // page.size)),
        "seq": seq,
        "actions": actions,
    }


class ChainStatus:
    """The chain check for the console, shared: reading and hashing 100,000 events takes
    about 20 s, so viewers who ask while a check runs wait for it and share its result
    instead of starting one each. A viewer who asks after it finished gets a fresh check:
    a rewrite must show at once."""

    def __init__(self, units: UnitOfWorkFactory, published: Published | None = None) -> None:
        self._units = units
        self._published = published
        self._lock = threading.Lock()
        self._running: Future[dict[str, Any]] | None = None

    def current(self) -> dict[str, Any]:
        with self._lock:
            running = self._running
            if running is None:
                running = self._running = Future()
                mine = True
            else:
                mine = False
        if not mine:
            return running.result()
        try:
            result = audit_status(self._units, self._published)
            running.set_result({**result, "checkedAt": datetime.now(UTC)})
        except BaseException as exc:
            running.set_exception(exc)
            raise
        finally:
            with self._lock:
                self._running = None
        return running.result()


def audit_status(units: UnitOfWorkFactory, published: Published | None = None) -> dict[str, Any]:
    """The whole chain checked by `services.audit.chain_status`, as `governance audit
    verify` checks it, for the console: seconds on a large trail, so the page asks for it
    separately. The first problems shown, each with the seq of the event it names."""
    with units(read_only=True) as uow:
        events = uow.audit.events()
    status = chain_status(events, published)
    problems = status.problems
    named = [
        {"text": text, "seq": int(match.group(1)) if match else None}
        for text in problems[:MAX_SHOWN_PROBLEMS]
        for match in [re.match(r"event (\d+)", text)]
    ]
    return {
        "intact": status.intact,
        "events": status.events,
        "head": status.head,
        "problems": named,
        "more": max(0, len(problems) - MAX_SHOWN_PROBLEMS),
    }


# --- policies ------------------------------------------------------------------------


@dataclass(frozen=True)
class PolicyVersion:
    """One policy document the service knows: in force (a file of the library), pinned by
    requests (a stored row), or both. `ref` is how an address names it: its version, or its
    sha256 when two documents claim the same name and version."""

    name: str
    version: int
    sha256: str
    risk_tier: str
    targets: list[str]
    document: dict[str, Any]
    in_force: bool = False
    pinned_at: datetime | None = None
    requests: int = 0
    ref: str = ""

    @property
    def source(self) -> str:
        """The canonical document (the one its sha256 covers) as YAML."""
        return yaml.safe_dump(self.document, sort_keys=False, allow_unicode=True, width=100)


@dataclass(frozen=True)
class PolicyDetail:
    version: PolicyVersion
    policy: PromotionPolicy
    siblings: list[PolicyVersion]  # every version of the same name, newest first


@dataclass(frozen=True)
class DiffLine:
    kind: str  # "same" | "add" | "del" | "gap" (lines left out between changes)
    old: int | None
    new: int | None
    text: str


@dataclass(frozen=True)
class PolicyDiff:
    old: PolicyVersion
    new: PolicyVersion
    lines: list[DiffLine]
    choices: list[PolicyVersion] = field(default_factory=list)

    @property
    def added(self) -> int:
        return sum(line.kind == "add" for line in self.lines)

    @property
    def removed(self) -> int:
        return sum(line.kind == "del" for line in self.lines)


def policy_versions(
    units: UnitOfWorkFactory, library: Sequence[PromotionPolicy]
) -> list[PolicyVersion]:
    """Every version: the library's, and every one a request ever pinned, by name and then
    newest first, each with how many requests pinned it."""
    with units(read_only=True) as uow:
        pinned = uow.catalog.pinned_policies()
    in_force = {policy.content_hash: policy for policy in library}
    versions: dict[str, PolicyVersion] = {}
    for stored in pinned:
        row = stored.policy
        versions[row.sha256] = PolicyVersion(
            name=row.name,
            version=row.version,
            sha256=row.sha256,
            risk_tier=row.risk_tier,
            targets=list(row.document.get("appliesTo", {}).get("targets", [])),
            document=row.document,
            in_force=row.sha256 in in_force,
            pinned_at=stored.pinned_at,
            requests=stored.requests,
        )
    for sha256, policy in in_force.items():
        if sha256 not in versions:
            versions[sha256] = PolicyVersion(
                name=policy.metadata.name,
                version=policy.metadata.version,
                sha256=sha256,
                risk_tier=policy.applies_to.risk_tier,
                targets=list(policy.applies_to.targets),
                document=json.loads(policy.canonical_json()),  # as it would be stored
                in_force=True,
            )
    # a pinned document first: decisions rest on it (a library file that claims its name
    # and version with other rules is refused when a request would pin it)
    ordered = sorted(versions.values(), key=lambda v: (v.name, -v.version, v.pinned_at is None))
    claims: dict[tuple[str, int], int] = {}
    for v in ordered:
        claims[v.name, v.version] = claims.get((v.name, v.version), 0) + 1
    return [
        replace(v, ref=v.sha256 if claims[v.name, v.version] > 1 else str(v.version))
        for v in ordered
    ]


def _find(versions: Sequence[PolicyVersion], name: str | None, ref: str) -> PolicyVersion:
    """By sha256 (any name), else by name and version (the pinned one first)."""
    ref = ref.strip().lower()
    if SHA256.match(ref):
        found = [v for v in versions if v.sha256 == ref]
    else:
        found = [v for v in versions if v.name == name and str(v.version) == ref.lstrip("v")]
    if not found:
        what = f"policy with sha256 {ref}" if SHA256.match(ref) else f"policy {name} v{ref}"
        raise NotFoundError(what, "pick one from the list of policies")
    return found[0]


def policy_detail(
    units: UnitOfWorkFactory, library: Sequence[PromotionPolicy], name: str, ref: str
) -> PolicyDetail:
    versions = policy_versions(units, library)
    version = _find(versions, name, ref)
    policy = parse_policy(version.document, f"policy {version.name} v{version.version}")
    siblings = [v for v in versions if v.name == version.name]
    return PolicyDetail(version, policy, siblings)


def policy_diff(
    units: UnitOfWorkFactory,
    library: Sequence[PromotionPolicy],
    name: str | None,
    old_ref: str | None,
    new_ref: str | None,
) -> PolicyDiff:
    """The line diff of two versions' canonical YAML, changes with three lines of context.
    Without versions: the newest of `name` against the one before it."""
    versions = policy_versions(units, library)
    if not name and not (old_ref and new_ref and SHA256.match(old_ref) and SHA256.match(new_ref)):
        raise InputError("name", "is missing", "give the policy's name, or two sha256 values")
    if name and not any(v.name == name for v in versions):
        raise NotFoundError(f"policy {name}", "pick one from the list of policies")
    siblings = [v for v in versions if v.name == name]
    new = _find(versions, name, new_ref) if new_ref else siblings[0]
    if old_ref:
        old = _find(versions, name, old_ref)
    else:
        older = [v for v in siblings if v.version < new.version]
        old = older[0] if older else new
    choices = siblings + [v for v in (old, new) if v not in siblings]
    return PolicyDiff(old, new, _line_diff(old.source, new.source), choices)


def _line_diff(old: str, new: str) -> list[DiffLine]:
    """Changed lines with three of context each side; a gap row where lines are left out."""
    a, b = old.splitlines(), new.splitlines()
    if a == b:
        return []
    lines: list[DiffLine] = []
    shown = 0  # lines of `a` shown or passed so far
    for group in difflib.SequenceMatcher(None, a, b, autojunk=False).get_grouped_opcodes(3):
        if group[0][1] > shown:
            lines.append(DiffLine("gap", None, None, "…"))
        for tag, i1, i2, j1, j2 in group:
            if tag == "equal":
                lines += [DiffLine("same", i + 1, j1 + i - i1 + 1, a[i]) for i in range(i1, i2)]
                continue
            lines += [DiffLine("del", i + 1, None, a[i]) for i in range(i1, i2)]
            lines += [DiffLine("add", None, j + 1, b[j]) for j in range(j1, j2)]
        shown = group[-1][2]
    if shown < len(a):
        lines.append(DiffLine("gap", None, None, "…"))
    return lines


# --- policy impact -------------------------------------------------------------------


def draft_impact(
    units: UnitOfWorkFactory, policies: ArtifactSource, text: str, source: str
) -> ImpactReport:
    """`governance policy impact` on a draft given as text: the same judging, nothing
    written. `policies` parses it (`source` names it in the errors)."""
    return policy_impact(units, policies.parse_policy_text(text, source))
