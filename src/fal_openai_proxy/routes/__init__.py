"""HTTP routes: thin wiring between the request and the translation and fal layers."""
