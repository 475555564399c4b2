"""Performance figures: ``aqm-llm bench bridge`` (shared-memory channel vs ZeroMQ and a Unix socket)."""
