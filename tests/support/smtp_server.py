"""A real SMTP server process (aiosmtpd) on a free port, keeping every message it receives in a Maildir.

    with SmtpServer(tmp_path / "smtp") as smtp:
        url = f"mailto://127.0.0.1:{smtp.port}?from=hub@example.com&to=ops@example.com"
        ...
        [message] = smtp.wait_for_messages(1)
        assert message["Subject"].startswith("[Marquee]")
"""

from __future__ import annotations

import email
import email.policy
import mailbox
import subprocess
import sys
from email.message import EmailMessage
from pathlib import Path
from types import TracebackType

from tests.support.brokers import free_port, port_open
from tests.support.waiting import wait_for


class SmtpServer:
    """`python -m aiosmtpd` with its `Mailbox` handler, owned by one test; a context manager."""

    def __init__(self, workdir: Path, *, port: int | None = None) -> None:
        self.workdir = workdir
        self.maildir = workdir / "maildir"
        self.port = port or free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def host(self) -> str:
        return "127.0.0.1"

    def url(self, *, to: str = "ops@example.com", sender: str = "marquee@example.com") -> str:
        """An apprise URL that delivers to this server, in clear (a test server has no TLS)."""
        return f"mailto://{self.host}:{self.port}?from={sender}&to={to}"

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        log = open(self.workdir / "smtp.log", "ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "aiosmtpd", "-n", "-l", f"{self.host}:{self.port}",
             "-c", "aiosmtpd.handlers.Mailbox", str(self.maildir)],
            stdout=log, stderr=subprocess.STDOUT)
        log.close()
        try:
            wait_for(self._listening, timeout=15, what=f"aiosmtpd on port {self.port}")
        except BaseException:
            self.stop()
            raise

    def _listening(self) -> bool:
        assert self.process is not None and self.process.poll() is None, self.log()
        return port_open(self.port)

    def log(self) -> str:
        path = self.workdir / "smtp.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self.process = None

    def messages(self) -> list[EmailMessage]:
        """Every message received so far, oldest first, parsed with the modern `email` policy."""
        if not self.maildir.exists():
            return []
        box = mailbox.Maildir(self.maildir, create=False)
        found: list[tuple[float, str, EmailMessage]] = []
        for key in box.keys():
            with box.get_file(key) as handle:
                raw = handle.read()
            parsed = email.message_from_bytes(raw, policy=email.policy.default)
            assert isinstance(parsed, EmailMessage)
            found.append((box.get_message(key).get_date(), key, parsed))
        return [message for _, _, message in sorted(found, key=lambda each: each[:2])]

    def wait_for_messages(self, count: int, *, timeout: float = 15.0) -> list[EmailMessage]:
        """The messages, once at least `count` arrived; AssertionError after `timeout` seconds."""
        return wait_for(lambda: (lambda got: got if len(got) >= count else [])(self.messages()),
                        timeout=timeout, interval=0.05, what=f"{count} message(s) at the SMTP server")

    def __enter__(self) -> SmtpServer:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


def body_text(message: EmailMessage) -> str:
    """The plain text (or, failing that, HTML) body of a message."""
    part = message.get_body(preferencelist=("plain", "html"))
    return "" if part is None else str(part.get_content())


def attachments(message: EmailMessage) -> dict[str, bytes]:
    """The message's attachments by file name."""
    found: dict[str, bytes] = {}
    for part in message.iter_attachments():
        payload = part.get_payload(decode=True)
        found[part.get_filename() or ""] = payload if isinstance(payload, bytes) else b""
    return found
