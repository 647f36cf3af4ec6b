"""Reports built from run records (the JSON-ready dicts of ``runner.record_of``)."""
