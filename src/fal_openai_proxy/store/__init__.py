"""Stores: the database of accounts (virtual keys, usage, the request log)."""
