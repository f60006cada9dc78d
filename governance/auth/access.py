"""Who may do what. The rules are casbin's: the model in `policies/rbac_model.conf`, the
policy lines in the database (casbin's SQLAlchemy adapter), seeded with `DEFAULT_GRANTS`.

Every subject casbin sees is namespaced: `user:NAME` (a person), `token:ID` (an API token)
and `role:NAME` (a role, the only kind of subject a `p` line grants to). casbin's `g`
matches a subject to itself, so without the prefixes a person named `ci` or `admin` would
hold that role by name alone; a user name cannot contain `:`, so the namespaces never meet.

A permission is (resource, action). Every HTTP operation names one, and the server checks
it before the handler runs; the workflow then applies the finer rules (which roles the
model's policy takes, segregation of duties)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable

import casbin
from sqlalchemy import Engine, func
from sqlalchemy_adapter import Adapter
from sqlmodel import Session, select

from governance.domain.roles import ROLE, role_name, role_subject, user_subject
from governance.resources import ACCESS_MODEL
from governance.store.tables import CasbinRule

MODEL = ACCESS_MODEL
# casbin logs every decision (a refusal as a warning): the admission path and every
# console page, which asks what to show, would write lines per request.
for _name in ("casbin", "casbin.enforcer", "casbin.role", "casbin.policy"):
    logging.getLogger(_name).setLevel(logging.ERROR)

READ = [
    ("models", "read"),
    ("policies", "read"),
    ("requests", "read"),
    ("decisions", "read"),
    ("reports", "read"),
    ("predictions", "read"),
    ("monitoring", "read"),
]
AUDIT = [("audit", "read")]
RUN = [("monitoring", "run")]  # a production check on demand
DEFAULT_GRANTS: dict[str, list[tuple[str, str]]] = {
    "data_scientist": [
        *READ,
        ("models", "register"),
        ("requests", "submit"),
        ("requests", "request_waiver"),
        ("requests", "promote"),
    ],
    "model_risk_officer": [*READ, *AUDIT, ("requests", "sign"), ("requests", "revoke"), *RUN],
    "business_owner": [*READ, ("requests", "sign")],
    "chief_risk_officer": [*READ, *AUDIT, ("requests", "sign"), ("requests", "revoke"), *RUN],
    "auditor": [
        *READ,
        *AUDIT,
        ("users", "read"),
        ("tokens", "read"),
        ("webhooks", "read"),
        ("connectors", "read"),
        ("builders", "read"),
    ],
    "admin": [
        *READ,
        *AUDIT,
        ("models", "register"),
        ("requests", "promote"),
        ("requests", "revoke"),
        ("users", "read"),
        ("users", "manage"),
        ("tokens", "read"),
        ("tokens", "manage"),
        ("predictions", "ingest"),
        ("monitoring", "run"),
        ("webhooks", "read"),
        ("webhooks", "manage"),
        ("connectors", "read"),
        ("connectors", "sync"),
        ("builders", "read"),
        ("builders", "manage"),
    ],
    "ci": [
        ("models", "read"),
        ("models", "register"),
        ("policies", "read"),
        ("requests", "read"),
        ("requests", "submit"),
        ("requests", "promote"),
        ("decisions", "read"),
        ("reports", "read"),
        ("predictions", "ingest"),
    ],
    "serving": [("admission", "check"), ("decisions", "read"), ("predictions", "ingest")],
}


# How often a process looks whether another one changed the rules (a role given in the
# console of one server process must hold in the others, and after the CLI's `user add`).
RULES_CHECK_SECONDS = 1.0


class AccessControl:
    """One casbin enforcer per process. Writes go through the adapter to the database;
    the lines another process wrote are loaded within `RULES_CHECK_SECONDS` (a query of the
    rules' count and highest id, at most once a second), or at once by `refresh`."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        adapter = Adapter(engine, db_class=CasbinRule, create_table=False)
        self._enforcer = casbin.Enforcer(str(MODEL), adapter)
        self._lock = threading.Lock()
        # casbin's matcher is interpreted and costs about 0.5 ms; answers are cached until the
        # rules change (a write here, or `refresh`).
        self._answers: dict[tuple[str, str, str], bool] = {}
        self._fingerprint = self._rules_fingerprint()
        self._next_check = time.monotonic() + RULES_CHECK_SECONDS

    def _rules_fingerprint(self) -> tuple[int, int | None]:
        with Session(self._engine) as session:
            count, highest = session.exec(
                select(func.count(), func.max(CasbinRule.id))  # type: ignore[call-overload]
            ).one()
        return int(count), highest

    def _follow_changes(self) -> None:
        now = time.monotonic()
        if now < self._next_check:
            return
        with self._lock:
            if now < self._next_check:
                return
            self._next_check = now + RULES_CHECK_SECONDS
            fingerprint = self._rules_fingerprint()
            if fingerprint != self._fingerprint:
                self._enforcer.load_policy()
                self._answers.clear()
                self._fingerprint = fingerprint

    def seed_defaults(self) -> None:
        """Add the default grants that are missing; grants an admin added are kept."""
        with self._lock:
            for role, grants in DEFAULT_GRANTS.items():
                subject = role_subject(role)
                for resource, action in grants:
                    if not self._enforcer.has_policy(subject, resource, action):
                        self._enforcer.add_policy(subject, resource, action)
            self._answers.clear()

    def refresh(self) -> None:
        with self._lock:
            self._enforcer.load_policy()
            self._answers.clear()
            self._fingerprint = self._rules_fingerprint()

    def allowed(self, subjects: Iterable[str], resource: str, action: str) -> bool:
        """Whether any of the (namespaced) subjects may; see `Principal.subjects`."""
        self._follow_changes()
        return any(self._allowed(s, resource, action) for s in subjects)

    def _allowed(self, subject: str, resource: str, action: str) -> bool:
        key = (subject, resource, action)
        answer = self._answers.get(key)
        if answer is None:
            answer = self._answers[key] = self._enforcer.enforce(subject, resource, action)
        return answer

    def roles_of(self, username: str) -> list[str]:
        """A person's roles, by their names (`admin`, not `role:admin`)."""
        self._follow_changes()
        held = self._enforcer.get_roles_for_user(user_subject(username))
        return sorted(role_name(r) for r in held if r.startswith(ROLE))

    def grants(self) -> list[list[str]]:
        """casbin's `p` lines with the role's name: [role, resource, action]."""
        return sorted([role_name(sub), *rest] for sub, *rest in self._enforcer.get_policy())
