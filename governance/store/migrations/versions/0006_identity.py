"""Identity: casbin subjects in namespaces, an accountable person for every token and
every submission.

- casbin rules: `p, R, obj, act` becomes `p, role:R, obj, act`; `g, NAME, R` becomes
  `g, user:NAME, role:R`; each token that is not revoked gets `g, token:ID, role:R` for
  the roles it was issued with. Before, `g(r.sub, p.sub)` held when a user's name equalled
  a role's name: a person named `ci` or `admin` held that role by name alone.
- `api_token.owner` is the person accountable for the token: its creator when the creator
  recorded there is a person (a `user_account` row); a token created by another token
  answers to that token's person; otherwise (the CLI, as `governance`) the first admin —
  the earliest-added enabled person holding admin, else the earliest-added admin. With no
  admin at all the value is left as it was.
- `promotion_request.submitter_person` (new): the submitter when a person, the token's
  owner when a token submitted, NULL for a registry connector.
- `model.owner` that names a token (`token:ID`) becomes the token's owner: a model's owner
  is a person. Other owners are kept.

Downgrade: the casbin rules go back to the plain form (the token lines are dropped: the
old code read a token's roles from `api_token.roles`) and `submitter_person` is dropped.
Token and model owners stay people, a value the old form accepted as well.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

USER, TOKEN, ROLE = "user:", "token:", "role:"

casbin_rule = sa.table(
    "casbin_rule",
    sa.column("id", sa.Integer),
    sa.column("ptype", sa.String),
    sa.column("v0", sa.String),
    sa.column("v1", sa.String),
)
user_account = sa.table(
    "user_account",
    sa.column("id", sa.Integer),
    sa.column("username", sa.String),
    sa.column("disabled", sa.Boolean),
)
api_token = sa.table(
    "api_token",
    sa.column("id", sa.String),
    sa.column("owner", sa.String),
    sa.column("roles", sa.JSON),
    sa.column("revoked_at", sa.DateTime(timezone=True)),
)
promotion_request = sa.table(
    "promotion_request",
    sa.column("id", sa.String),
    sa.column("submitter", sa.String),
    sa.column("submitter_person", sa.String),
)
model = sa.table("model", sa.column("id", sa.Integer), sa.column("owner", sa.String))


def upgrade() -> None:
    connection = op.get_bind()
    _namespace_rules(connection)
    people = set(connection.execute(sa.select(user_account.c.username)).scalars())
    owners = _token_owners(connection, people)
    for token_id, (owner, _) in owners.items():
        connection.execute(
            api_token.update().where(api_token.c.id == token_id).values(owner=owner)
        )
    for token_id, (_, roles) in owners.items():
        for role in sorted(set(roles)):
            connection.execute(
                casbin_rule.insert().values(ptype="g", v0=TOKEN + token_id, v1=ROLE + role)
            )

    with op.batch_alter_table("promotion_request", schema=None) as batch_op:
        batch_op.add_column(sa.Column("submitter_person", sa.String(), nullable=True))
    person_of = {TOKEN + token_id: owner for token_id, (owner, _) in owners.items()}
    person_of.update({name: name for name in people})
    requests = connection.execute(sa.select(promotion_request.c.id, promotion_request.c.submitter))
    for request_id, submitter in requests.all():
        if submitter in person_of:
            connection.execute(
                promotion_request.update()
                .where(promotion_request.c.id == request_id)
                .values(submitter_person=person_of[submitter])
            )
    models = connection.execute(
        sa.select(model.c.id, model.c.owner).where(model.c.owner.like(TOKEN + "%"))
    )
    for model_id, owner in models.all():
        if owner in person_of:
            connection.execute(
                model.update().where(model.c.id == model_id).values(owner=person_of[owner])
            )


def downgrade() -> None:
    connection = op.get_bind()
    connection.execute(
        casbin_rule.delete().where(casbin_rule.c.ptype == "g", casbin_rule.c.v0.like(TOKEN + "%"))
    )
    rows = connection.execute(sa.select(casbin_rule.c.id, casbin_rule.c.v0, casbin_rule.c.v1))
    for rule_id, v0, v1 in rows.all():
        plain = {
            "v0": v0.removeprefix(USER).removeprefix(ROLE) if v0 else v0,
            "v1": v1.removeprefix(ROLE) if v1 else v1,
        }
        if plain != {"v0": v0, "v1": v1}:
            connection.execute(casbin_rule.update().where(casbin_rule.c.id == rule_id).values(plain))
    with op.batch_alter_table("promotion_request", schema=None) as batch_op:
        batch_op.drop_column("submitter_person")


def _namespace_rules(connection: sa.Connection) -> None:
    """`p, R, …` -> `p, role:R, …` and `g, NAME, R` -> `g, user:NAME, role:R`; a value
    that has a namespace already is kept (a user name never holds `:`)."""
    rows = connection.execute(
        sa.select(casbin_rule.c.id, casbin_rule.c.ptype, casbin_rule.c.v0, casbin_rule.c.v1)
    )
    for rule_id, ptype, v0, v1 in rows.all():
        if ptype == "p":
            values = {"v0": _prefixed(ROLE, v0)}
        elif ptype == "g":
            values = {"v0": _prefixed(USER, v0), "v1": _prefixed(ROLE, v1)}
        else:
            continue
        connection.execute(casbin_rule.update().where(casbin_rule.c.id == rule_id).values(values))


def _prefixed(namespace: str, value: str | None) -> str | None:
    return value if value is None or ":" in value else namespace + value


def _token_owners(
    connection: sa.Connection, people: set[str]
) -> dict[str, tuple[str, list[str]]]:
    """Every token's accountable person and, for a token not revoked, its roles (a revoked
    token gets no casbin lines)."""
    tokens = {
        token_id: (owner, roles if revoked_at is None else [])
        for token_id, owner, roles, revoked_at in connection.execute(
            sa.select(api_token.c.id, api_token.c.owner, api_token.c.roles, api_token.c.revoked_at)
        ).all()
    }
    fallback = _first_admin(connection)

    def person(owner: str, seen: frozenset[str] = frozenset()) -> str:
        if owner in people:
            return owner
        creator = owner.removeprefix(TOKEN)
        if owner.startswith(TOKEN) and creator in tokens and creator not in seen:
            return person(tokens[creator][0], seen | {creator})
        return fallback or owner

    return {token_id: (person(owner), roles) for token_id, (owner, roles) in tokens.items()}


def _first_admin(connection: sa.Connection) -> str | None:
    """The earliest-added enabled admin, else the earliest-added admin (read before or
    after the rules were namespaced)."""
    holders = connection.execute(
        sa.select(casbin_rule.c.v0).where(
            casbin_rule.c.ptype == "g", casbin_rule.c.v1.in_(["admin", ROLE + "admin"])
        )
    ).scalars()
    admins = {h.removeprefix(USER) for h in holders if h}
    found = connection.execute(
        sa.select(user_account.c.username)
        .where(user_account.c.username.in_(admins))
        .order_by(user_account.c.disabled, user_account.c.id)
    ).first()
    return found[0] if found else None
