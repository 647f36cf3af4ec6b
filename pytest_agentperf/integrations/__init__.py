"""Optional integrations with LLM libraries; each imports its library only when used."""
