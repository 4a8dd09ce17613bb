"""Execution: worker processes, executors (local and Ray), output folders, caches, signals."""
