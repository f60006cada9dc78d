"""People's accounts, their roles (casbin's `g` lines), sessions and API tokens over SQL
(`governance.services.ports` `Accounts`, `Grants`, `SignedInSessions`, `ApiTokens`)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlmodel import col, select

from governance.domain.copying import copied
from governance.domain.records import Account, IssuedToken, SignedInSession
from governance.store.session import SqlRepository
from governance.store.tables import ApiToken, CasbinRule, UserAccount, UserSession


class SqlAccounts(SqlRepository):
    def get(self, username: str) -> Account | None:
        row = self._session.exec(select(UserAccount).filter_by(username=username)).first()
        return account(row) if row else None

    def locked(self, username: str) -> Account | None:
        query = select(UserAccount).filter_by(username=username).with_for_update()
        row = self._session.exec(query).first()
        return account(row) if row else None

    def lock_all(self) -> dict[str, Account]:
        query = select(UserAccount).order_by(col(UserAccount.username)).with_for_update()
        return {row.username: account(row) for row in self._session.exec(query).all()}

    def all(self) -> list[Account]:
        query = select(UserAccount).order_by(col(UserAccount.username))
        return [account(row) for row in self._session.exec(query).all()]

    def add(self, *, username: str, full_name: str, password_hash: str) -> Account:
        row = UserAccount(username=username, full_name=full_name, password_hash=password_hash)
        self._session.add(row)
        self._session.flush()
        return account(row)

    def save(self, changed: Account) -> None:
        row = self._session.get(UserAccount, changed.id)
        assert row is not None, "save an account read in this unit of work"
        row.disabled, row.password_hash = changed.disabled, changed.password_hash
        row.failed_sign_ins, row.locked_until = changed.failed_sign_ins, changed.locked_until
        self._session.add(row)


class SqlGrants(SqlRepository):
    def roles_of(self, subject: str) -> list[str]:
        return [line.v1 for line in self._lines(subject) if line.v1]

    def holders(self, role: str) -> list[str]:
        query = select(CasbinRule.v0).where(CasbinRule.ptype == "g", CasbinRule.v1 == role)
        return [holder for holder in self._session.exec(query).all() if holder]

    def grant(self, subject: str, role: str) -> None:
        self._session.add(CasbinRule(ptype="g", v0=subject, v1=role))

    def revoke_all(self, subject: str) -> None:
        for line in self._lines(subject):
            self._session.delete(line)

    def _lines(self, subject: str) -> Sequence[CasbinRule]:
        return self._session.exec(select(CasbinRule).filter_by(ptype="g", v0=subject)).all()


class SqlSignedInSessions(SqlRepository):
    def get(self, digest: str) -> SignedInSession | None:
        row = self._session.get(UserSession, digest)
        return signed_in(row) if row else None

    def add(self, session: SignedInSession) -> None:
        self._session.add(UserSession(**vars(session)))

    def remove(self, digest: str) -> None:
        row = self._session.get(UserSession, digest)
        if row is not None:
            self._session.delete(row)

    def end_all(self, username: str, keep: str | None = None) -> int:
        ended = 0
        for row in self._session.exec(select(UserSession).filter_by(username=username)):
            if row.digest != keep:
                self._session.delete(row)
                ended += 1
        return ended


class SqlApiTokens(SqlRepository):
    def add(
        self,
        *,
        token_id: str,
        name: str,
        owner: str,
        roles: Sequence[str],
        digest: str,
        expires_at: datetime | None,
    ) -> None:
        self._session.add(
            ApiToken(
                id=token_id,
                name=name,
                owner=owner,
                roles=list(roles),
                digest=digest,
                expires_at=expires_at,
            )
        )

    def locked(self, token_id: str) -> IssuedToken | None:
        query = select(ApiToken).filter_by(id=token_id).with_for_update()
        row = self._session.exec(query).first()
        return issued(row) if row else None

    def with_digest(self, digest: str) -> IssuedToken | None:
        row = self._session.exec(select(ApiToken).filter_by(digest=digest)).first()
        return issued(row) if row else None

    def revoke(self, token_id: str, at: datetime) -> None:
        row = self._session.get(ApiToken, token_id)
        assert row is not None, "revoke a token got (and locked) in this unit of work"
        row.revoked_at = at
        self._session.add(row)

    def all(self) -> list[IssuedToken]:
        query = select(ApiToken).order_by(col(ApiToken.created_at))
        return [issued(row) for row in self._session.exec(query).all()]


def account(row: UserAccount) -> Account:
    return copied(Account, row)


def signed_in(row: UserSession) -> SignedInSession:
    return copied(SignedInSession, row)


def issued(row: ApiToken) -> IssuedToken:
    return copied(IssuedToken, row, roles=tuple(row.roles))
