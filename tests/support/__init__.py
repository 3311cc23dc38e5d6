"""Test helpers: factories, an in-process ASGI transport, servers on loopback, the shared pack."""
