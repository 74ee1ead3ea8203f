"""Reconcile steps: what to do for a ParsePool or a Tenant, in order, with kopf's error split
(`PermanentError` for specs no retry can fix, `TemporaryError(delay=...)` for outages).
They call the builders (pure) and the clients (I/O), and nothing else."""
