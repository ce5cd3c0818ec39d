"""The feature store: Parquet layout and schemas, atomic writers, and the DuckDB warehouse."""

from storage.layout import FeatureStore

__all__ = ["FeatureStore"]
