"""The files shipped inside the governance package (policies, the casbin access model,
templates, mappings, migrations), found through `importlib.resources`, so that they are
found wherever the package is: a wheel in site-packages, or this checkout. A leaf module, so
every layer may ask without importing the settings."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path


def packaged(*parts: str) -> Path:
    """A file or folder shipped in the package, as a path: the settings name folders by path
    and pass them to other processes, so a package imported from a zip file is refused."""
    resource = files("governance").joinpath(*parts)
    if not isinstance(resource, Path):
        raise RuntimeError(
            f"governance/{'/'.join(parts)} is not a file on disk: install governance from its "
            "wheel or source, not as a zip file"
        )
    return resource


PACKAGED_POLICIES = packaged("policies")
ACCESS_MODEL = PACKAGED_POLICIES / "rbac_model.conf"
