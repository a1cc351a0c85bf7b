"""Rate limits of the public feedback form: requests per client address and per site over sliding windows.

In memory, per hub process (as the login limits, `cloud.api.login_guard`), bounded whatever a client sends; used
from the event loop only, so without locks. Pure: time is an argument.
"""

from __future__ import annotations

import math

from cloud.api.login_guard import FailureWindow
from cloud.settings import HubSettings


class FormLimits:
    """At most `client_limit` requests from one client (address, or IPv6 /64) in any `client_window` seconds, and
    `site_limit` to one site's form in any `site_window`."""

    def __init__(self, *, client_limit: int, client_window: float, site_limit: int, site_window: float) -> None:
        self.clients = FailureWindow(limit=client_limit, window=client_window)
        self.sites = FailureWindow(limit=site_limit, window=site_window)

    @classmethod
    def from_settings(cls, settings: HubSettings) -> FormLimits:
        """The limits the hub's settings give."""
        return cls(client_limit=settings.feedback_client_limit, client_window=settings.feedback_client_window_s,
                   site_limit=settings.feedback_site_limit, site_window=settings.feedback_site_window_s)

    def admit(self, *, client: str, site_id: str, now: float) -> int | None:
        """None, and the request counted, when it may go on; else the whole seconds to wait (nothing counted)."""
        site = site_id[:64]  # the key only: whatever a client puts in the path, memory stays bounded
        waits = [wait for wait in (self.clients.retry_after(client, now=now),
                                   self.sites.retry_after(site, now=now)) if wait is not None]
        if waits:
            return max(1, math.ceil(max(waits)))
        self.clients.record(client, now=now)
        self.sites.record(site, now=now)
        return None
