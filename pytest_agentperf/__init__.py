"""pytest-agentperf."""
