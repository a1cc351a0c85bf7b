"""Errors raised by the hub (the `cloud` package).

    HubError
    ├── ConfigError    settings that cannot be loaded or contradict each other
    ├── StoreError     the database refused or could not be reached
    ├── RegistryError  a device registration or resolution that cannot be done as asked
    ├── IngestError    a message that cannot be ingested as it stands (wrong site, unknown device)
    │   └── ReplayError  a signed batch the hub has already settled (archived or resolved): no answer
    ├── MemberError    a member request that cannot be done as asked (`kind`: not_found, conflict, invalid,
    │                  erased); messages name fields, never personal data or card numbers
    ├── AlertError     an alert case that does not exist (`kind` not_found) or cannot move to the state asked
    │                  (`kind` conflict)
    ├── StaffError     a staff account or blocklist change that cannot be done as asked (`kind`: not_found,
    │                  conflict, invalid); messages never hold a card number
    └── AccountError   a hub user change that cannot be done as asked (`kind`: not_found, conflict, invalid);
                       defined beside the accounts it guards, `cloud.access.accounts`

Library exceptions (SQLAlchemy, paho, pydantic, argon2) are translated into these at the module that
talks to the library, with `raise ... from exc`, so callers handle one tree.
"""

from __future__ import annotations


class HubError(Exception):
    """Base class of every error the hub raises."""


class ConfigError(HubError):
    """Settings that cannot be loaded or contradict each other."""


class StoreError(HubError):
    """The database refused a statement or could not be reached."""


class IngestError(HubError):
    """A message that cannot be ingested as it stands."""


class RegistryError(HubError):
    """A device registration, revocation or conflict resolution that cannot be done as asked."""


class ReplayError(IngestError):
    """A validly signed batch carrying an event the hub has already settled: dropped without an answer."""


class MemberError(HubError):
    """A member request that cannot be done as asked; `kind` says why, the message never holds personal data."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


class AlertError(HubError):
    """An alert case that cannot be found (`kind` not_found) or moved to the state asked (`kind` conflict)."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


class StaffError(HubError):
    """A staff account or blocklist change that cannot be done as asked; `kind` says why (not_found, conflict,
    invalid), the message never holds a card number."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
