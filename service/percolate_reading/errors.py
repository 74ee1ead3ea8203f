"""Exception tree for percolate-reading.

    PercolateError
    ├── ConfigError                      bad settings; fatal at start-up
    ├── ParseError                       anything a parse can raise; `.permanent` decides term vs nak
    │   ├── PermanentParseError          the same bytes will fail again: fail the job, `term`
    │   │   ├── UnsupportedTypeError     content is not a type we parse
    │   │   ├── EncryptedDocumentError   needs a password we were not given (or a wrong one)
    │   │   ├── CorruptDocumentError     truncated, broken beyond repair, not what its magic says
    │   │   ├── EmptyDocumentError       zero bytes, or nothing to extract at all
    │   │   ├── DocumentTooLargeError    over a size/page/cell/duration cap
    │   │   └── MemoryLimitError         the sandboxed child hit its address-space limit
    │   └── TransientParseError          may pass on another try: `nak` with backoff
    │       ├── ParseTimeoutError        the child ran past its wall-clock or CPU limit
    │       └── WorkerCrashedError       the child died without a typed error (signal, OOM killer)
    ├── StorageError                     object store unreachable or refusing (transient)
    │   └── ObjectNotFoundError          the key does not exist (permanent for that key)
    ├── QueueError                       JetStream unreachable, no PubAck, stream full (transient)
    ├── JobError
    │   ├── JobNotFoundError
    │   └── InvalidTransitionError       a status change that would move a job backwards
    └── ClientError                      raised by percolate_reading.client
        ├── ApiResponseError             the gateway answered with an error body (status, code)
        ├── GatewayUnreachableError      no answer at all (connection refused, timeouts)
        ├── WaitTimeoutError             a job was still not finished when `wait` gave up
        └── WebhookVerificationError     a webhook's signature or timestamp does not check out

Every error carries a stable machine-readable `code` so API responses, job records and
metrics can name the failure without parsing messages.
"""

from __future__ import annotations


class PercolateError(Exception):
    code: str = "error"
    permanent: bool = True

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __reduce__(self) -> tuple[type[PercolateError], tuple[str]]:
        # Keep errors picklable across the sandbox's process boundary even for subclasses
        # whose __init__ takes extra arguments: they must round-trip through `message` alone.
        return (type(self), (self.message,))


class ConfigError(PercolateError):
    code = "config_error"


class ParseError(PercolateError):
    code = "parse_error"
    # Set by the sandbox's parent when a limit stopped the child (wall_timeout, cpu_limit,
    # memory_limit, signal, cancelled): what the sandbox_kills_total metric counts.
    sandbox_kill: str | None = None


class PermanentParseError(ParseError):
    permanent = True


class UnsupportedTypeError(PermanentParseError):
    code = "unsupported_type"


class EncryptedDocumentError(PermanentParseError):
    code = "encrypted"


class CorruptDocumentError(PermanentParseError):
    code = "corrupt"


class EmptyDocumentError(PermanentParseError):
    code = "empty"


class DocumentTooLargeError(PermanentParseError):
    code = "too_large"


class MemoryLimitError(PermanentParseError):
    # Same bytes, same limit, same result: retrying a document that blew the memory cap only
    # burns a worker slot again.
    code = "memory_limit"


class TransientParseError(ParseError):
    code = "transient"
    permanent = False


class ParseTimeoutError(TransientParseError):
    code = "timeout"


class WorkerCrashedError(TransientParseError):
    code = "crashed"


class StorageError(PercolateError):
    code = "storage_unavailable"
    permanent = False


class ObjectNotFoundError(StorageError):
    code = "not_found"
    permanent = True


class QueueError(PercolateError):
    code = "queue_unavailable"
    permanent = False


class JobError(PercolateError):
    code = "job_error"


class JobNotFoundError(JobError):
    code = "job_not_found"


class InvalidTransitionError(JobError):
    code = "invalid_transition"


class ClientError(PercolateError):
    code = "client_error"


class ApiResponseError(ClientError):
    """An error answer: `status`, the body's `code` and `message`, and `retry_after` seconds
    when the gateway sent Retry-After."""

    def __init__(
        self, message: str, *, status: int = 0, code: str = "http_error", retry_after: float | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.retry_after = retry_after
        self.permanent = status not in (429, 502, 503, 504)

    def __str__(self) -> str:
        return f"{self.status} {self.code}: {self.message}"


class GatewayUnreachableError(ClientError):
    code = "unreachable"
    permanent = False


class WaitTimeoutError(ClientError):
    code = "wait_timeout"
    permanent = False


class WebhookVerificationError(ClientError):
    code = "invalid_webhook"
