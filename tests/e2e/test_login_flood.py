"""A flood of wrong passwords from many addresses while a box sells: every sale still reaches the hub
within seconds, /healthz keeps answering at once, and the hub's memory stays bounded."""

from __future__ import annotations

import asyncio
import base64
import itertools
import logging
import multiprocessing
import multiprocessing.synchronize
import os
import queue
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from ipaddress import IPv4Address
from multiprocessing.sharedctypes import Synchronized
from typing import Any

import httpx
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from protocol.codec import decode
from protocol.messages import Ack
from protocol.topics import device_topic
from tests.e2e.conftest import Site
from tests.e2e.test_card_to_hub import rows_by_key, sale
from tests.support.brokers import Mosquitto
from tests.support.processes import Hub, edge_status
from tests.support.waiting import wait_for

log = logging.getLogger(__name__)

FLOOD_CLIENTS = 100  # as many as the outside probe used
FLOOD_SECONDS = 15.0
MIN_SALES = 20
SALE_TO_HUB_LIMIT = 5.0  # seconds from the till's answer to the hub's ack
HEALTHZ_LIMIT = 0.3
# A check blocked behind Argon2 on the event loop waits for whole checks (about 0.3 s each here, several
# queued); on this 2-core machine the flood's 100 clients, the box and the test itself leave /healthz at
# 0.09-0.17 s at worst with the loop free (measured 2026-11-25 on the code before and after members).
HUB_MEMORY_LIMIT_MB = 400  # the probe saw 982 MB; a few Argon2 checks of 64 MiB at once fit well below


@pytest.mark.e2e
# PostgreSQL, as chains run the hub: the pools' separation is what is tested, and the suite's time is kept for the
# other end-to-end tests (the login limits themselves are tested on both databases in tests/unit/hub).
@pytest.mark.parametrize("hub", ["postgresql"], indirect=True)
def test_a_login_flood_neither_delays_sales_nor_healthz(
    hub: Hub, make_site: Callable[..., Site], mosquitto: Mosquitto
) -> None:
    site = make_site()
    wait_for(lambda: any(s["site_id"] == "riverside" and s["online"] for s in hub.get("/api/v1/sites")),
             timeout=30, what="the site online at the hub")
    # Nothing left to ack: from now on, every ack the watcher sees answers a sale of this test.
    wait_for(lambda: edge_status(site.config)["backlog"] == 0, timeout=30, what="the box's backlog empty")
    acks = AckWatcher(mosquitto, site)
    healthz = HealthzWatcher(hub)
    flood = Flood(hub.http_port, clients=FLOOD_CLIENTS)
    try:
        flood.start()
        wait_for(lambda: flood.answers.value >= 2 * FLOOD_CLIENTS, timeout=30, what="the flood under way")
        flooding_since = time.monotonic()
        latencies: list[float] = []
        while len(latencies) < MIN_SALES or time.monotonic() - flooding_since < FLOOD_SECONDS:
            held = acks.acked_seq
            answer = site.pos.sale(sale(f"F-{len(latencies) + 1}", tickets=1, price=1000))
            answered_at = time.monotonic()
            assert answer.status == "ok", answer
            acks.wait_beyond(held, timeout=SALE_TO_HUB_LIMIT * 2)
            latencies.append(time.monotonic() - answered_at)
        flood_answers = flood.stop()
    finally:
        flood.stop()
        checks = healthz.stop()
        acks.stop()

    # The flood really hit: Argon2 ran for some of its guesses, the rest were turned away with 429 (the
    # gate full; an address over its limit, rarely, since a refusal at the gate is not a failed login),
    # and nothing else came back.
    assert flood_answers["401"] >= 10 and flood_answers["429 busy"] >= 1000, flood_answers
    assert set(flood_answers) <= {"401", "429 busy", "429 client"}, flood_answers
    worst_healthz = max(elapsed for elapsed, _ in checks)
    log.info(
        "login flood: %d clients, %s; %d sales, to the hub in max %.3f s, mean %.3f s; "
        "/healthz %d checks, max %.1f ms, mean %.1f ms; hub memory max %d MB",
        FLOOD_CLIENTS, dict(flood_answers), len(latencies), max(latencies), sum(latencies) / len(latencies),
        len(checks), worst_healthz * 1000, sum(e for e, _ in checks) / len(checks) * 1000, healthz.max_rss_mb,
    )
    assert max(latencies) < SALE_TO_HUB_LIMIT, latencies
    assert len(checks) >= FLOOD_SECONDS * 5
    assert {answer for _, answer in checks} == {(200, '{"status":"up"}')}
    assert worst_healthz < HEALTHZ_LIMIT, sorted(elapsed for elapsed, _ in checks)[-10:]
    assert healthz.max_rss_mb < HUB_MEMORY_LIMIT_MB
    # Every sale is held once at the hub, and the hub's own user can still sign in.
    assert rows_by_key(hub, "site")["riverside"]["sales"] == len(latencies)
    # The operator reads of the flood in a line or two, and no password is ever written down.
    assert hub.program is not None
    hub_log = hub.program.log()
    assert 1 <= hub_log.count("too many logins at once") <= 2
    assert "wrong-password" not in hub_log


class AckWatcher:
    """Subscribes to the box's ack topic: the hub acks only after the commit."""

    def __init__(self, broker: Mosquitto, site: Site) -> None:
        self.acked_seq = 0
        self._client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2)
        self._client.on_message = self._on_message
        self._client.on_connect = lambda client, *_: client.subscribe(
            device_topic(site.settings.site_id, site.settings.device_id, "ack"), qos=1
        )
        self._client.connect(broker.host, broker.port)
        self._client.loop_start()
        wait_for(lambda: self._client.is_connected(), timeout=10, what="the ack watcher connected")

    def wait_beyond(self, held: int, *, timeout: float) -> None:
        """Wait until the hub acks a seq above `held`."""
        wait_for(lambda: self.acked_seq > held, timeout=timeout, interval=0.005, what=f"an ack beyond seq {held}")

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        self.acked_seq = max(self.acked_seq, decode(Ack, bytes(message.payload)).acked_seq)

    def stop(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()


@dataclass
class HealthzWatcher:
    """Asks /healthz every 50 ms over one kept-alive connection, as a load balancer does, and reads the
    hub's resident memory beside it."""

    hub: Hub
    checks: list[tuple[float, tuple[int, str]]] = field(default_factory=list)
    max_rss_mb: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __post_init__(self) -> None:
        self._thread = threading.Thread(target=self._run, name="healthz-watcher", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        assert self.hub.program is not None and self.hub.program.process is not None
        status_file = f"/proc/{self.hub.program.process.pid}/status"
        with httpx.Client(base_url=self.hub.url, timeout=5) as client:
            while not self._stop.wait(0.05):
                started = time.perf_counter()
                try:
                    response = client.get("/healthz")
                    answer = (response.status_code, response.text)
                except httpx.HTTPError as exc:
                    answer = (0, repr(exc))
                self.checks.append((time.perf_counter() - started, answer))
                with open(status_file) as status:
                    rss_kb = next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))
                self.max_rss_mb = max(self.max_rss_mb, rss_kb // 1024)

    def stop(self) -> list[tuple[float, tuple[int, str]]]:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        return self.checks


class Flood:
    """`clients` concurrent HTTP clients in a process of their own, each sending wrong passwords as fast as
    the hub answers. Half come from a new loopback address and a new username each time (no per-address
    or per-user limit applies: only the gate around Argon2 holds them); half keep one address each."""

    def __init__(self, port: int, *, clients: int) -> None:
        context = multiprocessing.get_context("spawn")
        self.answers: Synchronized[int] = context.Value("i", 0)
        self._stop = context.Event()
        self._results: multiprocessing.Queue[dict[str, int]] = context.Queue()
        self._process = context.Process(
            target=_flood, args=(port, clients, self._stop, self.answers, self._results), daemon=True
        )
        self._counts: Counter[str] | None = None

    def start(self) -> None:
        self._process.start()

    def stop(self) -> Counter[str]:
        """Stop the clients; what the hub answered them: "401", "429 busy", "429 client"..."""
        if self._process.pid is None:
            return Counter()
        if self._counts is None:
            self._stop.set()
            try:
                self._counts = Counter(self._results.get(timeout=30))
            except queue.Empty:
                self._counts = Counter()
            self._process.join(timeout=10)
            if self._process.is_alive():
                self._process.kill()
        return self._counts


def _flood(port: int, clients: int, stop: multiprocessing.synchronize.Event, answers: Synchronized[int],
           results: multiprocessing.Queue[dict[str, int]]) -> None:
    # The attacker's CPU is not the hub's: on a test machine it is, so the flood only takes what the
    # hub leaves (it still sends far more than the hub can check: see the 429s counted).
    os.nice(10)
    counts: Counter[str] = Counter()
    rotating = itertools.count()

    async def client(n: int) -> None:
        fixed = n % 2 == 1
        while not stop.is_set():
            i = next(rotating)
            address = str(IPv4Address("127.2.0.1") + n) if fixed else str(IPv4Address("127.16.0.1") + i)
            username = f"victim-{n}" if fixed else f"guess-{i}"
            token = base64.b64encode(f"{username}:wrong-password-{i}".encode()).decode()
            request = (f"GET /api/v1/sites HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                       f"Authorization: Basic {token}\r\nConnection: close\r\n\r\n").encode()
            try:
                reader, writer = await asyncio.wait_for(
                    asyncio.open_connection("127.0.0.1", port, local_addr=(address, 0)), timeout=10
                )
                writer.write(request)
                response = await asyncio.wait_for(reader.read(), timeout=10)
                writer.close()
                status = response.split(b" ", 2)[1].decode()
            except (OSError, TimeoutError, IndexError, ValueError) as exc:
                status = f"no answer: {type(exc).__name__}"  # counted, so the test sees it
            if status == "429":
                status += " busy" if b"being checked" in response else " client" if b"address" in response else " ?"
            counts[status] += 1
            with answers.get_lock():
                answers.value += 1

    async def main() -> None:
        await asyncio.gather(*(client(n) for n in range(clients)))

    asyncio.run(main())
    results.put(dict(counts))
