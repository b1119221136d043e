"""Pure translation between OpenAI's shapes and fal's (no I/O)."""
