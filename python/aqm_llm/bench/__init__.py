"""Performance figures: ``aqm-llm bench channel`` (shared-memory channel vs ZeroMQ and a Unix socket)."""
