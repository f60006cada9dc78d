"""The promotion state machine and the signing rules: pure domain code."""

from __future__ import annotations

import pytest

from governance.domain.policy import Approvals
from governance.domain.workflow import (
    FINAL,
    TRANSITIONS,
    Action,
    IllegalTransitionError,
    Signature,
    SignatureRefusedError,
    Signer,
    State,
    check_signature,
    quorum_reached,
    transition,
)

RULES = Approvals(
    quorum=2,
    roles=["model_risk_officer", "business_owner"],
    distinct_roles=True,
    forbid_self_approval=True,
    expires_after_days=365,
)
MRO = Signer("maria", frozenset({"model_risk_officer"}))
BO = Signer("bob", frozenset({"business_owner"}))


def walk(*actions: Action) -> State:
    state = State.SUBMITTED
    for action in actions:
        state = transition(state, action)
    return state


def test_happy_path_to_promoted_and_revoked() -> None:
    state = walk(Action.START_CHECKS, Action.CHECKS_PASSED, Action.APPROVE, Action.PROMOTE)
    assert state is State.PROMOTED
    assert transition(state, Action.REVOKE) is State.REVOKED


def test_blocked_then_waived_then_promoted() -> None:
    state = walk(Action.START_CHECKS, Action.CHECKS_BLOCKED, Action.REQUEST_WAIVER)
    assert state is State.WAIVER_REQUESTED
    assert walk(Action.START_CHECKS, Action.CHECKS_BLOCKED, Action.REQUEST_WAIVER,
                Action.GRANT_WAIVER, Action.PROMOTE) is State.PROMOTED  # fmt: skip


def test_illegal_move_names_the_current_state_and_the_way_on() -> None:
    with pytest.raises(IllegalTransitionError) as caught:
        transition(State.BLOCKED, Action.PROMOTE)
    assert caught.value.state is State.BLOCKED
    assert (
        str(caught.value) == "cannot promote a request that is blocked; from here: request_waiver"
    )
    with pytest.raises(IllegalTransitionError, match="it is final"):
        transition(State.REVOKED, Action.PROMOTE)


def test_final_states_have_no_way_out_and_every_state_is_reachable() -> None:
    assert not [s for (s, _) in TRANSITIONS if s in FINAL]
    reached = {State.SUBMITTED, *TRANSITIONS.values()}
    assert reached == set(State)


def test_self_approval_is_refused() -> None:
    with pytest.raises(SignatureRefusedError, match="segregation of duties"):
        check_signature(
            RULES, MRO, "model_risk_officer", submitter="maria", owner="dana", previous=[]
        )
    with pytest.raises(SignatureRefusedError, match="segregation of duties"):
        check_signature(
            RULES, MRO, "model_risk_officer", submitter="sam", owner="maria", previous=[]
        )


def test_role_rules() -> None:
    with pytest.raises(SignatureRefusedError, match="does not hold the role business_owner"):
        check_signature(RULES, MRO, "business_owner", "sam", "dana", [])
    auditor = Signer("ann", frozenset({"auditor"}))
    with pytest.raises(SignatureRefusedError, match="not auditor"):
        check_signature(RULES, auditor, "auditor", "sam", "dana", [])


def test_distinct_roles_and_no_double_signing() -> None:
    first = [Signature("maria", "model_risk_officer")]
    other_mro = Signer("mike", frozenset({"model_risk_officer"}))
    with pytest.raises(SignatureRefusedError, match="distinct roles"):
        check_signature(RULES, other_mro, "model_risk_officer", "sam", "dana", first)
    with pytest.raises(SignatureRefusedError, match="signed this request already"):
        check_signature(RULES, MRO, "model_risk_officer", "sam", "dana", first)
    check_signature(RULES, BO, "business_owner", "sam", "dana", first)


def test_quorum() -> None:
    assert not quorum_reached(RULES, [Signature("maria", "model_risk_officer")])
    assert quorum_reached(
        RULES, [Signature("maria", "model_risk_officer"), Signature("bob", "business_owner")]
    )
    assert not quorum_reached(
        RULES, [Signature("maria", "model_risk_officer"), Signature("mike", "model_risk_officer")]
    )
    any_role = RULES.model_copy(update={"distinct_roles": False})
    assert quorum_reached(
        any_role,
        [Signature("maria", "model_risk_officer"), Signature("mike", "model_risk_officer")],
    )
