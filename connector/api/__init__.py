"""calsync's HTTP API: parse, authenticate, call the core, render."""
