"""Kubernetes operator for percolate-reading: ParsePool and Tenant custom resources.

`models` (specs), `builders` (pure spec -> manifests/configs), `jetstream` and `kube` (I/O),
`handlers` (kopf wiring), `__main__` (the `percolate-operator` entrypoint).
"""

__all__: list[str] = []
