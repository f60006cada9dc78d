"""Where the files shipped with governance are: the policies folder and the casbin access
model in it. A leaf module, so every layer may ask without importing the settings."""

from __future__ import annotations

from pathlib import Path

PACKAGED_POLICIES = Path(__file__).resolve().parent.parent / "policies"
ACCESS_MODEL = PACKAGED_POLICIES / "rbac_model.conf"
