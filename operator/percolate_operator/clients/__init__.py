"""The only code that talks to the outside: the Kubernetes API (`kube`), NATS JetStream
(`jetstream`) and S3 (`storage`). Reconcile steps call these; builders never do I/O."""
