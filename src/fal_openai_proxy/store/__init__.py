"""Stores: the database (accounts: virtual keys, usage, the request log; videos) and Redis."""
