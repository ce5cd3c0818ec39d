"""Where every table of the feature store lives under the store root.

The root is a URI (default `./data`); paths are UPath objects so that an object store can be
plugged in later. Hive-style `key=value` folders let DuckDB and pyarrow datasets read partition
columns from the path.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from upath import UPath

from synergy.registry import check_key

DATA_FILE = "data.parquet"


@dataclass(frozen=True)
class FeatureStore:
    root: str

    @classmethod
    def from_env(cls) -> "FeatureStore":
        return cls(os.environ.get("SYNERGY_STORE", "data"))

    @property
    def path(self) -> UPath:
        return UPath(self.root)

    @property
    def is_local(self) -> bool:
        return self.path.protocol in ("", "file", "local")

    def local_root(self) -> str:
        """Absolute path for local stores (DuckDB views hold it), the URI otherwise."""
        return os.path.abspath(self.path.path) if self.is_local else str(self.path)

    # ------------------------------------------------------------- tables
    def checkpoint(self, backbone: str) -> UPath:
        return self.path / "zoo" / f"{check_key(backbone)}.safetensors"

    def backbone_info(self, backbone: str) -> UPath:
        return self.path / "backbones" / f"backbone={check_key(backbone)}" / DATA_FILE

    def examples(self, dataset: str) -> UPath:
        return self.path / "datasets" / f"dataset={check_key(dataset)}" / DATA_FILE

    def embeddings(self, backbone: str, dataset: str) -> UPath:
        return self.path / "embeddings" / f"backbone={check_key(backbone)}" / f"dataset={check_key(dataset)}" / DATA_FILE

    def class_embeddings(self, backbone: str, dataset: str) -> UPath:
        return (self.path / "class_embeddings" / f"backbone={check_key(backbone)}" / f"dataset={check_key(dataset)}"
                / DATA_FILE)

    def rejects(self, backbone: str, dataset: str) -> UPath:
        return self.path / "rejects" / f"backbone={check_key(backbone)}" / f"dataset={check_key(dataset)}" / DATA_FILE

    def dataset_dir(self, table: str, dataset: str) -> UPath:
        """Per-dataset output folder of a downstream stage (analysis, ensembles)."""
        return self.path / check_key(table) / f"dataset={check_key(dataset)}"

    def plots_dir(self, dataset: str) -> UPath:
        return self.path / "plots" / f"dataset={check_key(dataset)}"

    @property
    def warehouse(self) -> UPath:
        return self.path / "warehouse.duckdb"

    def glob(self, table: str, depth: int) -> str:
        """The DuckDB glob of one hive-partitioned table, e.g. `<root>/embeddings/*/*/data.parquet`."""
        return "/".join([self.local_root(), table, *(["*"] * depth), DATA_FILE])
