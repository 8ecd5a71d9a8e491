"""voxvault: consent-first voice cloning that runs offline.

Public API::

    from voxvault import VoxVault, Settings, VoxError

Names load lazily so ``import voxvault.errors`` stays cheap (no engines, no codecs).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__all__ = ["Settings", "VoxError", "VoxVault"]
__version__ = "0.1.0"

if TYPE_CHECKING:
    from voxvault.config import Settings
    from voxvault.errors import VoxError
    from voxvault.service import VoxVault


def __getattr__(name: str) -> Any:
    if name == "Settings":
        from voxvault.config import Settings

        return Settings
    if name == "VoxError":
        from voxvault.errors import VoxError

        return VoxError
    if name == "VoxVault":
        from voxvault.service import VoxVault

        return VoxVault
    raise AttributeError(name)
