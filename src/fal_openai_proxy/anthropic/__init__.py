"""Anthropic's Messages API: request and answer shapes, errors and stream framing
(checked against the `anthropic` Python SDK's `types/`; docs/anthropic.md)."""
