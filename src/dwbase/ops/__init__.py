"""Operator tools: backups and local node deployments (used by the CLI)."""
