"""Notification channels: a name the hub's settings give an apprise URL (e-mail, a webhook, Slack, Teams,
Telegram, DingTalk, WeCom, LINE...), checked at start and built once.

A channel's URL holds passwords and tokens: it stays a `SecretStr`, is never logged nor stored, and what
apprise says about a failure is kept with the URL's secrets and any e-mail address masked. Apprise logs
through its `apprise` logger; while the hub sends or checks a URL (`quiet_apprise`) its lines are only
captured, per attempt, for the caller (a check would otherwise echo a URL it cannot parse, and a failing
channel would log one line per retry); anywhere else they reach the hub's log as usual.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Literal
from urllib.parse import parse_qsl, unquote, urlsplit

import apprise
from apprise.attachment.memory import AttachMemory
from apprise.manager_plugins import NotificationManager
from pydantic import SecretStr

from cloud.errors import ConfigError

CHANNEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
"""A channel's name: it is stored with each delivery (`alert_deliveries.channel`)."""
SEND_TIMEOUT_S = 60.0
"""The longest one send may take (apprise's whole call)."""
ERROR_LENGTH = 300
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]{0,31})://")
_EMAIL = re.compile(r"[^\s@<>\"'(),;:/]+@[^\s@<>\"'(),;:/]+")
_HOSTNAME = re.compile(r"^(localhost|[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+|\[[0-9A-Fa-f:.]+\])$")
_NOTIFY_TYPES = {"info": apprise.NotifyType.INFO, "warning": apprise.NotifyType.WARNING,
                 "critical": apprise.NotifyType.FAILURE}

_quiet: ContextVar[bool] = ContextVar("marquee_apprise_quiet", default=False)


class _Forward(logging.Handler):
    """Passes the `apprise` logger's records on as propagation would, except inside `quiet_apprise`."""

    def emit(self, record: logging.LogRecord) -> None:
        if not _quiet.get():
            logging.getLogger().handle(record)


@contextmanager
def quiet_apprise() -> Iterator[None]:
    """Within it, apprise's log lines are captured in its results only (see the module's docstring)."""
    source = logging.getLogger(apprise.LOGGER_NAME)
    if not any(isinstance(handler, _Forward) for handler in source.handlers):
        source.addHandler(_Forward())
        source.propagate = False  # _Forward propagates instead, unless quiet
    token = _quiet.set(True)
    try:
        yield
    finally:
        _quiet.reset(token)


def channel_problem(name: str, url: str) -> str | None:
    """Why channel `name` with `url` cannot be used, naming the channel and the service, never the URL;
    None when apprise understands it."""
    if not CHANNEL_NAME.match(name):
        return "a channel name must be 1 to 64 letters, digits, '_', '.' or '-', starting with a letter or digit"
    match = _SCHEME.match(url.strip())
    if match is None:
        return f"channel {name!r}: its URL does not start with a service (like mailto:// or json://)"
    scheme = match.group(1).lower()
    if scheme not in NotificationManager():  # type: ignore[no-untyped-call]
        return f"channel {name!r}: apprise knows no service {scheme}://"
    with quiet_apprise():
        service = apprise.Apprise.instantiate(url.strip(), suppress_exceptions=True)
    if service is None:
        return f"channel {name!r}: apprise cannot use this {scheme}:// URL (check its host, tokens and fields)"
    return None


def channels_problem(channels: Mapping[str, SecretStr]) -> str | None:
    """The first problem of a set of channels (`channel_problem`), or None."""
    for name, url in channels.items():
        problem = channel_problem(name, url.get_secret_value())
        if problem is not None:
            return problem
    return None


@dataclass(frozen=True)
class Attachment:
    """A file sent with a message, from memory."""

    name: str
    content: bytes
    mimetype: str = "text/csv"


class Channel:
    """One configured target, its apprise service built once; `send` says None or why it failed."""

    def __init__(self, name: str, url: SecretStr) -> None:
        raw = url.get_secret_value().strip()
        problem = channel_problem(name, raw)
        if problem is not None:
            raise ConfigError(problem)
        with quiet_apprise():
            service = apprise.Apprise.instantiate(raw, suppress_exceptions=True)
        assert service is not None  # channel_problem said it is understood
        self.name = name
        self._apprise = apprise.Apprise()
        self._apprise.add(service)
        self._secrets = sorted(_secrets_of(raw), key=len, reverse=True)

    def send(self, *, title: str, body: str, severity: Literal["info", "warning", "critical"] = "info",
             attachment: Attachment | None = None) -> str | None:
        """Deliver one message; None when the service took it, else a short reason (secrets masked)."""
        attach = None
        if attachment is not None:
            attach = apprise.AppriseAttachment()
            memory = AttachMemory(content=attachment.content, name=attachment.name,  # type: ignore[no-untyped-call]
                                  mimetype=attachment.mimetype)
            attach.add(memory)
        try:
            with quiet_apprise():
                # Plain text in: apprise escapes it for the services that want HTML or Markdown.
                result = self._apprise.notify(body=body, title=title, notify_type=_NOTIFY_TYPES[severity],
                                              body_format=apprise.NotifyFormat.TEXT, attach=attach,
                                              timeout=SEND_TIMEOUT_S)
        except Exception as exc:  # a plugin's bug must not stop the courier: the delivery is retried
            return self.mask(f"apprise failed: {type(exc).__name__}")
        try:
            if result:
                return None
            said = [entry.message for entry in result.logs() if entry.level not in ("DEBUG", "INFO", "TRACE")]
            reason = "; ".join(dict.fromkeys(message.strip() for message in said if message.strip()))
            return self.mask(reason or f"apprise: {result.status.name.lower()}")
        finally:
            for each in result:
                each.close()

    def mask(self, text: str) -> str:
        """`text` without the URL's secrets nor any e-mail address, at most 300 characters."""
        for secret in self._secrets:
            text = text.replace(secret, "***")
        text = _EMAIL.sub("***", text)
        text = " ".join(text.split())
        return text if len(text) <= ERROR_LENGTH else text[:ERROR_LENGTH - 1] + "…"


def _secrets_of(url: str) -> set[str]:
    """Every part of an apprise URL that may be a secret or a person: user, password, token-like hosts
    (`tgram://<bot token>/...`), path segments and query values; raw and decoded, 3 characters or more."""
    match = _SCHEME.match(url)
    rest = url[match.end():] if match else url
    parts = urlsplit("x://" + rest)
    found: list[str] = []
    userinfo, _, hostport = parts.netloc.rpartition("@")
    found += userinfo.split(":")
    host, _, port = hostport.partition(":") if not hostport.startswith("[") else (hostport, "", "")
    if not _HOSTNAME.match(host):
        found.append(host)
    if port and not port.isdigit():
        found.append(port)
    found += parts.path.split("/")
    found += [value for _, value in parse_qsl(parts.query, keep_blank_values=False)]
    found += parts.fragment.split("/")
    secrets = {each for each in found if len(each) >= 3}
    return secrets | {unquote(each) for each in secrets if len(unquote(each)) >= 3}
