"""Repository policy: the layers, the docs and the packaging agree with the code."""
