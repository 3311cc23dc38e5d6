"""calsync's application: HTTP API, Cal.com client, sync core, queue, worker and sandbox."""
