"""Checks: the registry of checks and the pipeline that runs one case through one adapter."""
