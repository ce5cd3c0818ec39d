"""Resources injected into every asset: the registry, the feature store and the compute settings."""

from __future__ import annotations

import dagster as dg

from pipelines import settings
from storage.layout import FeatureStore
from synergy.registry import Registry, load_registry


class SynergyResource(dg.ConfigurableResource):
    """Registry file, store root and extraction settings; defaults come from SYNERGY_* env vars."""

    registry_path: str = settings.registry_path()
    store_root: str = settings.store_root()
    device: str = "auto"
    batch_size: int = 256
    num_workers: int = 2
    torch_threads: int = 0  # 0: leave torch's default
    max_reject_share: float = 0.01  # extraction fails when more of a split's images are unreadable

    def registry(self) -> Registry:
        return load_registry(self.registry_path)

    def store(self) -> FeatureStore:
        return FeatureStore(self.store_root)

    def setup_torch(self) -> None:
        import torch

        if self.torch_threads:
            torch.set_num_threads(self.torch_threads)
