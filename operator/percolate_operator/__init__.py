"""Kubernetes operator for percolate-reading: ParsePool and Tenant custom resources.

`models` (specs), `builders/` (pure spec -> manifests/configs/status), `clients/` (the only I/O:
Kubernetes, NATS, S3), `reconcile/` (the steps, in order),
`handlers` (kopf wiring), `__main__` (the `percolate-operator` entrypoint).
"""

__all__: list[str] = []
