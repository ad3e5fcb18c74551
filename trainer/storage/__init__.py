"""Backups with a checksum manifest, and restoring a model from one without MLflow."""
