"""clip-synergy's ML library: registry, datasets, backbones, zero-shot heads, ensembles.

Nothing in this package imports Dagster, so a notebook can use it directly.
"""

from synergy.errors import SynergyError

__all__ = ["SynergyError"]
