"""The Dagster code location: Definitions, partitions, resources, jobs, sensors and schedules."""
