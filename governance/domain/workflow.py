"""The promotion workflow: a pure state machine, and the rules for who may sign.

Only service functions move a request; each move is checked here first, so an illegal
move is refused with the current state (HTTP 409) before anything is written.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from governance.domain.policy import Approvals


class State(StrEnum):
    SUBMITTED = "submitted"
    CHECKING = "checking"
    BLOCKED = "blocked"
    AWAITING_APPROVAL = "awaiting_approval"
    APPROVED = "approved"
    PROMOTED = "promoted"
    REJECTED = "rejected"
    WAIVER_REQUESTED = "waiver_requested"
    WAIVED = "waived"
    EXPIRED = "expired"
    REVOKED = "revoked"


class Action(StrEnum):
    START_CHECKS = "start_checks"
    CHECKS_PASSED = "checks_passed"
    CHECKS_BLOCKED = "checks_blocked"
    APPROVE = "approve"  # the signature that completes the quorum
    REJECT = "reject"
    REQUEST_WAIVER = "request_waiver"
    GRANT_WAIVER = "grant_waiver"
    DENY_WAIVER = "deny_waiver"
    PROMOTE = "promote"
    EXPIRE = "expire"
    REVOKE = "revoke"


TRANSITIONS: dict[tuple[State, Action], State] = {
    (State.SUBMITTED, Action.START_CHECKS): State.CHECKING,
    (State.CHECKING, Action.CHECKS_PASSED): State.AWAITING_APPROVAL,
    # a verdict of `error` blocks too: the gate fails closed
    (State.CHECKING, Action.CHECKS_BLOCKED): State.BLOCKED,
    (State.AWAITING_APPROVAL, Action.APPROVE): State.APPROVED,
    (State.AWAITING_APPROVAL, Action.REJECT): State.REJECTED,
    (State.BLOCKED, Action.REQUEST_WAIVER): State.WAIVER_REQUESTED,
    (State.WAIVER_REQUESTED, Action.GRANT_WAIVER): State.WAIVED,
    (State.WAIVER_REQUESTED, Action.DENY_WAIVER): State.REJECTED,
    (State.APPROVED, Action.PROMOTE): State.PROMOTED,
    (State.WAIVED, Action.PROMOTE): State.PROMOTED,
    (State.APPROVED, Action.EXPIRE): State.EXPIRED,
    (State.WAIVED, Action.EXPIRE): State.EXPIRED,
    (State.PROMOTED, Action.EXPIRE): State.EXPIRED,
    (State.APPROVED, Action.REVOKE): State.REVOKED,
    (State.WAIVED, Action.REVOKE): State.REVOKED,
    (State.PROMOTED, Action.REVOKE): State.REVOKED,
}

FINAL: frozenset[State] = frozenset({State.REJECTED, State.EXPIRED, State.REVOKED})


class IllegalTransitionError(Exception):
    """The move does not exist from the current state."""

    def __init__(self, state: State, action: Action) -> None:
        self.state = state
        self.action = action
        allowed = sorted(a.value for (s, a) in TRANSITIONS if s is state)
        super().__init__(
            f"cannot {action.value} a request that is {state.value}"
            + (f"; from here: {', '.join(allowed)}" if allowed else "; it is final")
        )


def transition(state: State, action: Action) -> State:
    try:
        return TRANSITIONS[(state, action)]
    except KeyError:
        raise IllegalTransitionError(state, action) from None


@dataclass(frozen=True)
class Signer:
    user: str
    roles: frozenset[str]


@dataclass(frozen=True)
class Signature:
    user: str
    role: str


class SignatureRefusedError(Exception):
    """This person may not sign this request now; the message says why."""


def check_signature(
    rules: Approvals,
    signer: Signer,
    role: str,
    submitter: str | None,
    owner: str | None,
    previous: Sequence[Signature],
) -> None:
    """Segregation of duties and the policy's roles, before a signature is recorded.
    `signer.user`, `submitter` and `owner` are people (a token's accountable person, not
    the token): a person may not approve what they submitted through a machine."""
    if role not in signer.roles:
        raise SignatureRefusedError(f"{signer.user} does not hold the role {role}")
    if role not in rules.roles:
        raise SignatureRefusedError(
            f"the policy takes signatures from {', '.join(rules.roles)}, not {role}"
        )
    if rules.forbid_self_approval and signer.user in (submitter, owner):
        raise SignatureRefusedError(
            f"{signer.user} submitted or owns this model and may not approve it "
            "(segregation of duties)"
        )
    if any(s.user == signer.user for s in previous):
        raise SignatureRefusedError(f"{signer.user} has signed this request already")
    if rules.distinct_roles and any(s.role == role for s in previous):
        raise SignatureRefusedError(
            f"the policy asks for distinct roles and {role} has signed already"
        )


def quorum_reached(rules: Approvals, signatures: Sequence[Signature]) -> bool:
    """N approvals from the policy's roles; with distinctRoles, from N different roles."""
    valid = [s for s in signatures if s.role in rules.roles]
    count = len({s.role for s in valid}) if rules.distinct_roles else len({s.user for s in valid})
    return count >= rules.quorum
