"""Stage 5: the DuckDB warehouse file, with views over every table of the store."""


import dagster as dg

from assets.extraction import embeddings
from assets.metadata import markdown_table, rows_of
from pipelines.resources import SynergyResource
from storage.warehouse import build_warehouse, connect_readonly, query_sql


@dg.asset(deps=[embeddings, "analysis", "ensembles"], group_name="warehouse", kinds={"duckdb"})
def warehouse(context: dg.AssetExecutionContext, synergy: SynergyResource) -> dg.MaterializeResult:
    """`<store>/warehouse.duckdb`: documented views (docs/sql.md), rebuilt beside the old file and swapped in."""
    registry, store = synergy.registry(), synergy.store()
    result = build_warehouse(store, registry)
    if result["skipped"]:
        context.log.info(f"views skipped until their stage is materialized: {', '.join(result['skipped'])}")
    con = connect_readonly(store.warehouse.path)
    try:
        accuracy = {d: rows_of(con, query_sql("accuracy_by_backbone"), {"dataset": d}) for d in registry.dataset_keys}
    finally:
        con.close()
    metadata = {f"accuracy_{d.replace('-', '_')}": dg.MetadataValue.md(markdown_table(rows))
                for d, rows in accuracy.items()}
    return dg.MaterializeResult(metadata={
        **metadata, "views": ", ".join(result["created"]),
        "path": dg.MetadataValue.path(str(store.warehouse.path)),
    })
