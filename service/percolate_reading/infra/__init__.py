"""Infrastructure adapters: NATS JetStream, object storage, job stores, the tenant registry,
context and webhooks; each translates its library's errors into percolate_reading.errors."""
