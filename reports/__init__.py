"""Reports: pure functions of results.jsonl (and a baseline, for the diff)."""
