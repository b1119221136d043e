"""Benchmark harness: the proxy against a direct fal client, on the same simulator."""
