"""One service per endpoint family: it runs the call; routes only parse and respond."""
