"""Every error the service raises, in one tree.

::

    CdsError
    ├── KnowledgeError          knowledge/ or cards/ is invalid: the service refuses to start
    ├── ConfigurationError      a setting or a configuration file is invalid: refuses to start
    ├── TerminologyImportError  `cds terminology import`: the folder is not a readable release
    │   └── SettingError        one CDS_* variable (or the database it names): one line
    └── RequestError            something about one call; mapped to an HTTP status in cds.app
        ├── BadRequest          400: malformed JSON or a body of the wrong shape
        ├── Unauthorized        401: missing or invalid client JWT (never says why)
        ├── UnknownService      404: no CDS service with that id
        ├── PayloadTooLarge     413: body over CDS_MAX_BODY_BYTES
        ├── UnsupportedMedia    415: content type is not JSON
        ├── PrefetchUnavailable 412: required data neither prefetched nor fetchable
        ├── ServiceUnavailable  503: a part the route needs (the database) is not there
        └── FhirServerError     the FHIR server failed (degraded per key, or 412)

Only :mod:`cds.app` turns these into HTTP responses (OperationOutcome bodies);
the engine and the other plain modules raise them and never import a web framework.
"""

from __future__ import annotations

__all__ = [
    "BadRequest",
    "CdsError",
    "ConfigurationError",
    "FhirServerError",
    "KnowledgeError",
    "PayloadTooLarge",
    "PrefetchUnavailable",
    "RequestError",
    "ServiceUnavailable",
    "SettingError",
    "TerminologyImportError",
    "Unauthorized",
    "UnknownService",
    "UnsupportedMedia",
]


class CdsError(Exception):
    """Root of every error this package raises on purpose."""


class KnowledgeError(CdsError):
    """The knowledge or card content is invalid; ``problems`` names file and field."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("invalid knowledge:\n  " + "\n  ".join(problems))


class ConfigurationError(CdsError):
    """A setting or a file it names is invalid; ``problems`` names the file and field."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("invalid configuration:\n  " + "\n  ".join(problems))


class TerminologyImportError(CdsError):
    """A terminology release folder given to `cds terminology import` cannot be read."""


class SettingError(ConfigurationError):
    """A ``CDS_*`` variable holds a value that is not allowed, or the service it names does not
    answer. The message is one line naming the variable, the value and what is allowed."""

    def __init__(self, message: str) -> None:
        self.problems = [message]
        CdsError.__init__(self, message)


class RequestError(CdsError):
    """An error in one call. ``status`` is the HTTP status; ``code`` the FHIR issue type."""

    status: int = 400
    code: str = "invalid"
    severity: str = "error"

    def __init__(self, diagnostics: str, *, expression: list[str] | None = None) -> None:
        self.diagnostics = diagnostics
        self.expression = expression or []
        super().__init__(diagnostics)


class BadRequest(RequestError):
    status = 400
    code = "invalid"


class Unauthorized(RequestError):
    status = 401
    code = "login"

    def __init__(self, reason: str = "unauthorized") -> None:
        # The reason is kept for metrics and logs; the response body only says "unauthorized".
        self.reason = reason
        super().__init__("unauthorized")


class UnknownService(RequestError):
    status = 404
    code = "not-found"


class PayloadTooLarge(RequestError):
    status = 413
    code = "too-long"


class UnsupportedMedia(RequestError):
    status = 415
    code = "not-supported"


class PrefetchUnavailable(RequestError):
    status = 412
    code = "incomplete"


class ServiceUnavailable(RequestError):
    status = 503
    code = "transient"


class FhirServerError(RequestError):
    """The FHIR server could not give us data. ``kind`` says how it failed (for metrics)."""

    status = 412
    code = "transient"

    def __init__(self, diagnostics: str, *, kind: str = "error") -> None:
        self.kind = kind
        super().__init__(diagnostics)
