"""Rollups: contract used by ingestion and seeding (implementation in progress)."""
