"""A model card: what the people who built a model say it is for and where it fails. The
decision report prints it; a reviewer signs knowing what the model is meant to do."""

from __future__ import annotations

from pydantic import Field

from governance.domain.policy import Schema

TEXT = Field(default=None, max_length=4000)


class ModelCard(Schema):
    """Free text, every field optional: a missing field shows as 'not provided' in the
    report, which is itself a finding."""

    purpose: str | None = TEXT
    intended_use: str | None = TEXT
    out_of_scope_use: str | None = TEXT
    training_data: str | None = TEXT
    limitations: str | None = TEXT
    ethical_considerations: str | None = TEXT
    contact: str | None = Field(default=None, max_length=200)

    def rows(self, owner: str | None, risk_tier: str) -> list[tuple[str, str | None]]:
        return [
            ("Purpose", self.purpose),
            ("Intended use", self.intended_use),
            ("Out-of-scope use", self.out_of_scope_use),
            ("Owner", owner),
            ("Contact", self.contact),
            ("Risk tier", risk_tier),
            ("Training data", self.training_data),
            ("Limitations", self.limitations),
            ("Ethical considerations", self.ethical_considerations),
        ]
