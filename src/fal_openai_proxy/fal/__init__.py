"""Everything that touches fal's wire format: URLs, auth, run, stream, queue, errors."""
