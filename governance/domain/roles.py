"""The roles and casbin's namespaced subjects, as plain names: what the people use case
grants and checks (`governance.services.people`) without the enforcer
(`governance.auth.access`), which reads the same names.

Every subject casbin sees is namespaced: `user:NAME` (a person), `token:ID` (an API token)
and `role:NAME` (a role); a user name cannot contain `:`, so the namespaces never meet."""

from __future__ import annotations

ROLES = (
    "data_scientist",
    "model_risk_officer",
    "business_owner",
    "chief_risk_officer",
    "auditor",
    "admin",
    "ci",
    "serving",
)
HUMAN_ROLES = ROLES[:6]

USER, TOKEN, ROLE = "user:", "token:", "role:"


def user_subject(username: str) -> str:
    return USER + username


def token_subject(token_id: str) -> str:
    return TOKEN + token_id


def role_subject(role: str) -> str:
    return ROLE + role


def role_name(subject: str) -> str:
    """`role:admin` -> `admin`; anything else is no role and stays as it is."""
    return subject.removeprefix(ROLE)
