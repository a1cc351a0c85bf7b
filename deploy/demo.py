"""`make demo`: a whole chain on this machine — a broker, the hub, and three sites with virtual devices.

Each site is a real `marquee-edge run` process reading pseudo-terminals that `marquee-edge simulate`
plays as card readers and POS terminals. Ctrl-C stops everything and leaves no process behind.
Run with the project's venv: .venv/bin/python deploy/demo.py [--http-port 8000] [--exit-when-ready]
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from demo_rules import closing_lines, demo_rules, fraud_line, rules_line  # beside this script

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
MEMBERS_PER_TILL = 3000  # each till's customers: few enough come twice an hour that the fraud rules leave them be
SALES_PER_MINUTE = 20
DISHONEST = ("riverside", "t2")  # this till's cashier swipes their own card on customers' sales
# Each site's tills: how the POS speaks to the box, and the card readers beside it (every family the box
# reads, as cinemas have them: bought over the years). A member's fob reads the same at every reader.
SITE_NAMES = ["Riverside", "Old Town", "Harbour"]
SITES: list[tuple[str, list[tuple[str, list[dict[str, object]]]]]] = [
    ("riverside", [("serial", [{"kind": "rdm6300"}, {"kind": "magstripe"}]),
                   ("serial", [{"kind": "pn532"}, {"kind": "barcode"}])]),
    ("old-town", [("tcp", [{"kind": "wiegand", "wiegand_output": "hex"}, {"kind": "nfc-line"}]),
                  ("tcp", [{"kind": "rdm6300"}])]),
    ("harbour", [("serial", [{"kind": "wiegand", "wiegand_output": "bits"}, {"kind": "barcode"}])]),
]


def toml_value(value: object) -> str:
    return json.dumps(value) if isinstance(value, str | bool) else str(value)


def say(text: str) -> None:
    print(text, flush=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_free(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the hub's server does
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def wait_port(port: int, timeout: float, proc: subprocess.Popen[bytes], what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{what} exited with code {proc.returncode}; see its log in .demo/")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"{what} did not listen on port {port} within {timeout:.0f}s")


class Demo:
    def __init__(self, workdir: Path, http_port: int) -> None:
        self.workdir = workdir
        self.http_port = http_port
        self.cashiers = 0
        self.procs: list[tuple[str, subprocess.Popen[bytes]]] = []
        self.hub_env: dict[str, str] = {}
        self.hub_key = ""
        self.pepper = secrets.token_hex(16)  # the chain's card pepper: every box and the hub hold it

    def spawn(self, name: str, args: list[str], env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        log = open(self.workdir / f"{name}.log", "ab")  # noqa: SIM115 - closed with the process
        proc = subprocess.Popen(
            args, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})},
            start_new_session=True, cwd=self.workdir,
        )
        log.close()
        self.procs.append((name, proc))
        return proc

    def stop_all(self) -> None:
        # Boxes first (they tell the hub they go offline), then their devices, the hub, the broker.
        stages = [
            [p for n, p in self.procs if n.endswith("-box")],
            [p for n, p in self.procs if n.endswith("-devices")],
            [p for n, p in self.procs if n == "hub"],
            [p for n, p in self.procs if n == "broker"],
        ]
        for stage in stages:
            for proc in stage:
                if proc.poll() is None:
                    try:
                        os.killpg(proc.pid, signal.SIGTERM)
                    except ProcessLookupError:
                        pass
            for proc in stage:
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()

    def start_broker(self, choice: str) -> tuple[int, str]:
        port = free_port()
        mosquitto = shutil.which("mosquitto") or shutil.which("mosquitto", path="/usr/sbin:/usr/local/sbin")
        if choice == "mosquitto" and not mosquitto:
            raise SystemExit("mosquitto is not installed (apt-get install mosquitto)")
        if mosquitto and choice != "amqtt":
            conf = self.workdir / "mosquitto.conf"
            conf.write_text(
                f"listener {port} 127.0.0.1\nallow_anonymous true\nset_tcp_nodelay true\n"
                "max_queued_messages 100000\npersistence false\n"
            )
            proc = self.spawn("broker", [mosquitto, "-c", str(conf)])
            wait_port(port, 10, proc, "mosquitto")
            return port, "5"
        if choice == "auto":
            say("mosquitto not found: using the embedded broker (amqtt, MQTT 3.1.1)")
        conf = self.workdir / "amqtt.yaml"
        conf.write_text(
            "listeners:\n  default:\n    type: tcp\n"
            f"    bind: 127.0.0.1:{port}\n"
            "plugins:\n  amqtt.plugins.authentication.AnonymousAuthPlugin:\n    allow_anonymous: true\n"
        )
        proc = self.spawn("broker", [str(BIN / "amqtt"), "-c", str(conf)])
        wait_port(port, 20, proc, "amqtt")
        return port, "3.1.1"

    def start_hub(self, mqtt_port: int, protocol: str) -> tuple[str, str]:
        env = self.hub_env = {
            "MARQUEE_HUB_DATABASE_URL": f"sqlite:///{self.workdir / 'hub.db'}",
            "MARQUEE_HUB_MQTT_PORT": str(mqtt_port),
            "MARQUEE_HUB_MQTT_PROTOCOL": protocol,
            "MARQUEE_HUB_HTTP_PORT": str(self.http_port),
            "MARQUEE_HUB_RULES_KEY_FILE": str(self.workdir / "hub-rules.key"),
            "MARQUEE_HUB_MEMBER_KEY_FILE": str(self.workdir / "hub-members.key"),
            "MARQUEE_HUB_PEPPER": self.pepper,  # the boxes' own: a card HQ enrols is the card a till reads
            "MARQUEE_HUB_CARD_EM4100": "wiegand24",
        }
        if protocol != "5":
            env["MARQUEE_HUB_MQTT_SHARED_GROUP"] = ""
        hub = str(BIN / "marquee-hub")
        subprocess.run([hub, "migrate"], env={**os.environ, **env}, check=True, cwd=self.workdir,
                       stdout=subprocess.DEVNULL)
        password = secrets.token_urlsafe(12)
        subprocess.run([hub, "user", "add", "admin", "--role", "admin", "--password-stdin"],
                       input=password.encode(), env={**os.environ, **env}, check=True, cwd=self.workdir,
                       stdout=subprocess.DEVNULL)
        # The key that signs the rule bundles; every box is configured with its public half.
        self.hub_key = subprocess.run([hub, "rules", "key"], env={**os.environ, **env}, check=True,
                                      cwd=self.workdir, capture_output=True, text=True).stdout.strip()
        subprocess.run([hub, "members", "key"], env={**os.environ, **env}, check=True, cwd=self.workdir,
                       stdout=subprocess.DEVNULL)
        proc = self.spawn("hub", [hub, "serve"], env)
        wait_port(self.http_port, 30, proc, "the hub")
        return "admin", password

    def publish_rules(self) -> None:
        """HQ's loyalty programme as a signed bundle: tiers, a film's campaign, the CinePass (DEMO_RULES)."""
        draft = self.workdir / "rules-draft.json"
        draft.write_text(json.dumps(demo_rules(datetime.now(UTC)), indent=2))
        subprocess.run([str(BIN / "marquee-hub"), "rules", "publish", str(draft)],
                       env={**os.environ, **self.hub_env}, check=True, cwd=self.workdir, stdout=subprocess.DEVNULL)

    def import_members(self) -> int:
        """HQ moves its members over from the old CRM: some of the simulated tills' card holders."""
        from demo_members import write_members_csv  # beside this script

        seeds = [index * 10 + till for index, (_, tills) in enumerate(SITES, start=1) for till in range(len(tills))]
        export = self.workdir / "crm-export.csv"
        count = write_members_csv(export, seeds, members=MEMBERS_PER_TILL, share=0.04)
        subprocess.run([str(BIN / "marquee-hub"), "members", "import", str(export)],
                       env={**os.environ, **self.hub_env}, check=True, cwd=self.workdir, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        return count

    def start_sites(self, mqtt_port: int, protocol: str, login: tuple[str, str]) -> None:
        pepper = self.pepper
        configs: list[tuple[int, str, Path]] = []
        for index, (site, tills) in enumerate(SITES, start=1):
            site_dir = self.workdir / "sites" / site
            (site_dir / "dev").mkdir(parents=True)
            till_blocks = ""
            if any(transport == "tcp" for transport, _ in tills):
                till_blocks += f'\n[pos_tcp]\nlisten = "127.0.0.1:{free_port()}"\n'
            for n, (transport, readers) in enumerate(tills, start=1):
                till_blocks += f'\n[[tills]]\ntill_id = "t{n}"\n'
                till_blocks += ('pos_transport = "tcp"\npos_peers = ["127.0.0.1/32"]\n' if transport == "tcp"
                                # A till applying benefits needs the longer answer in its 500 ms (pos-protocol 9).
                                else f'pos_port = "{site_dir}/dev/pos-t{n}"\npos_baudrate = 38400\n')
                for reader in readers:
                    options = "".join(f"{key} = {toml_value(value)}\n" for key, value in reader.items())
                    till_blocks += (f'\n[[readers]]\ntill = "t{n}"\nport = "{site_dir}/dev/{reader["kind"]}-t{n}"\n'
                                    + options)
            config = site_dir / "edge.toml"
            config.touch(mode=0o600)  # it holds the pepper: the box refuses a world-readable one
            config.write_text(
                f'site_id = "{site}"\ndevice_id = "{site}-box1"\ndata_dir = "{site_dir / "data"}"\n'
                f'pepper = "{pepper}"\ndemo = true\nhub_public_key = "{self.hub_key}"\n'
                f'\n[mqtt]\nport = {mqtt_port}\nprotocol = "{protocol}"\n'
                f'\n[sync]\nheartbeat_s = 5\n\n[cards]\nem4100 = "wiegand24"\n{till_blocks}'
            )
            edge = str(BIN / "marquee-edge")
            # As a technician provisions a box: its keys, then its public key registered at the hub.
            subprocess.run([edge, "init", "--config", str(config)], check=True, stdout=subprocess.DEVNULL)
            key = subprocess.run([edge, "identity", "--config", str(config)], check=True, capture_output=True,
                                 text=True).stdout.strip()
            subprocess.run([str(BIN / "marquee-hub"), "devices", "add", "--site", site, "--device", f"{site}-box1",
                            "--public-key", key], env={**os.environ, **self.hub_env}, check=True,
                           cwd=self.workdir, stdout=subprocess.DEVNULL)
            configs.append((index, site, config))
        self.cashiers = self.add_staff(login)  # the sites exist now; each box gets its staff with the directory
        edge = str(BIN / "marquee-edge")
        for index, site, config in configs:
            dishonest = ["--dishonest-till", DISHONEST[1]] if site == DISHONEST[0] else []
            self.spawn(f"{site}-devices", [edge, "simulate", "--config", str(config), "--seed", str(index * 10),
                                            "--sales-per-minute", str(SALES_PER_MINUTE), "--unplug-every", "180",
                                            "--redeem-rate", "0.3", "--pass-rate", "0.02",
                                            "--members", str(MEMBERS_PER_TILL), "--staff", *dishonest,
                                            "--stats-file", str(self.workdir / f"{site}-tills.json")])
            self.spawn(f"{site}-box", [edge, "run", "--config", str(config)])

    def add_staff(self, login: tuple[str, str]) -> int:
        """HQ registers each till's cashier and their badge, as the simulators will play them (the same seeds)."""
        from edge.simulator.staff import site_staff

        count = 0
        for index, (site, tills) in enumerate(SITES, start=1):
            for cashier in site_staff(site, index * 10, [f"t{n}" for n in range(1, len(tills) + 1)]).values():
                assert cashier.badge is not None
                self.api(login, "PUT", f"/api/v1/staff/{cashier.cashier}", {"role": "cashier", "sites": [site]})
                tag = cashier.badge.fob & 0xFFFFFF  # the chain reads 125 kHz cards in the wiegand24 form
                self.api(login, "POST", f"/api/v1/staff/{cashier.cashier}/badges",
                         {"family": "em4100", "card": f"{tag >> 16:03d},{tag & 0xFFFF:05d}"})
                count += 1
        return count

    def add_catalogue(self, login: tuple[str, str]) -> tuple[str, str]:
        """Each site's name, time zone and halls' seats (h1-h6, as simulated), and a site manager of the first site
        (their login returned). No places: simulated members visit every site, which impossible travel would flag."""
        for (site, _), name in zip(SITES, SITE_NAMES, strict=True):
            self.api(login, "PUT", f"/api/v1/sites/{site}", {"name": name, "timezone": "Europe/Paris"})
            for hall in range(1, 7):
                self.api(login, "PUT", f"/api/v1/sites/{site}/halls/h{hall}", {"seats": 60 + 40 * hall})
        manager = ("manager-" + SITES[0][0], secrets.token_urlsafe(12))
        self.api(login, "POST", "/api/v1/users", {"username": manager[0], "password": manager[1],
                                                 "role": "site_manager", "sites": [SITES[0][0]]})
        return manager

    def api(self, login: tuple[str, str], method: str, path: str, body: object | None = None) -> Any:
        """One call to the hub's API as the demo's admin; the answer's JSON (None when empty)."""
        token = base64.b64encode(f"{login[0]}:{login[1]}".encode()).decode()
        request = urllib.request.Request(f"http://127.0.0.1:{self.http_port}{path}", method=method,
                                         data=json.dumps(body).encode() if body is not None else None,
                                         headers={"Authorization": f"Basic {token}",
                                                  "Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=10) as response:
            data = response.read()
        return json.loads(data) if data else None

    def alerts(self, login: tuple[str, str]) -> list[dict[str, Any]]:
        """The alert cases HQ holds (empty when it cannot say)."""
        try:
            return list(self.api(login, "GET", "/api/v1/alerts?limit=100"))
        except (urllib.error.URLError, OSError, ValueError, TypeError):
            return []

    def wait_for_sales(self, login: tuple[str, str], timeout: float) -> list[dict[str, object]]:
        url = f"http://127.0.0.1:{self.http_port}/api/v1/stats/box-office?group_by=site"
        token = base64.b64encode(f"{login[0]}:{login[1]}".encode()).decode()
        request = urllib.request.Request(url, headers={"Authorization": f"Basic {token}"})
        deadline = time.monotonic() + timeout
        rows: list[dict[str, object]] = []
        while time.monotonic() < deadline:
            for name, proc in self.procs:
                if proc.poll() is not None:
                    raise SystemExit(f"{name} exited with code {proc.returncode}; see .demo/{name}.log")
            try:
                with urllib.request.urlopen(request, timeout=2) as response:
                    rows = json.load(response)
            except (urllib.error.URLError, OSError, ValueError):
                rows = []
            if len({row["key"] for row in rows}) >= len(SITES):
                return rows
            time.sleep(0.5)
        raise SystemExit(f"sales from {len(SITES)} sites did not reach the hub within {timeout:.0f}s")

    def sponsors_bill(self, login: tuple[str, str]) -> list[dict[str, Any]]:
        """What the hub bills each sponsor this month, from the sales it holds (empty when it cannot say)."""
        start = datetime.now(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        query = urllib.parse.urlencode({"from": start.isoformat(), "to": (datetime.now(UTC) + timedelta(hours=1))
                                        .isoformat()})
        token = base64.b64encode(f"{login[0]}:{login[1]}".encode()).decode()
        request = urllib.request.Request(f"http://127.0.0.1:{self.http_port}/api/v1/rules/sponsors?{query}",
                                         headers={"Authorization": f"Basic {token}"})
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                return list(json.load(response)["sponsors"])
        except (urllib.error.URLError, OSError, ValueError, KeyError, TypeError):
            return []

    def till_stats(self) -> list[dict[str, Any]]:
        """Every simulated till's counters, as the simulators last wrote them."""
        found = []
        for site, _ in SITES:
            try:
                found += json.loads((self.workdir / f"{site}-tills.json").read_text())["tills"].values()
            except (OSError, ValueError, KeyError, AttributeError):
                continue
        return found


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--http-port", type=int, default=8000)
    parser.add_argument("--workdir", type=Path, default=ROOT / ".demo")
    parser.add_argument("--exit-when-ready", action="store_true", help="stop once every site's sales show")
    parser.add_argument("--broker", choices=["auto", "mosquitto", "amqtt"], default="auto",
                        help="auto: Mosquitto when installed, else the embedded amqtt")
    args = parser.parse_args()
    if not port_free(args.http_port):
        raise SystemExit(f"port {args.http_port} is in use; stop what uses it or pass --http-port")
    if args.workdir.exists():
        shutil.rmtree(args.workdir)
    args.workdir.mkdir(parents=True)
    demo = Demo(args.workdir, args.http_port)
    # Ctrl-C, a closed terminal or a kill all end the same way: every process of the demo stopped.
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _interrupt)
    started = time.monotonic()
    ready = False
    login = None
    try:
        mqtt_port, protocol = demo.start_broker(args.broker)
        login = demo.start_hub(mqtt_port, protocol)
        demo.publish_rules()
        members = demo.import_members()
        demo.start_sites(mqtt_port, protocol, login)
        manager = demo.add_catalogue(login)
        cashiers = demo.cashiers
        rows = demo.wait_for_sales(login, timeout=60)
        say("")
        say(f"Marquee demo is running: {len(SITES)} sites, broker on 127.0.0.1:{mqtt_port} (MQTT {protocol})")
        say(f"  Dashboard: http://127.0.0.1:{args.http_port}/")
        say(f"  API:       http://127.0.0.1:{args.http_port}/docs")
        say(f"  Login:     {login[0]} / {login[1]}   (site manager of {SITES[0][0]} only: {manager[0]} / {manager[1]})")
        say(f"  Members:   {members} enrolled from a CRM export; tills earn and redeem points")
        say(rules_line())
        say(f"  Staff:     {cashiers} cashiers sign in with their badges; the cashier of {DISHONEST[0]} till "
            f"{DISHONEST[1]} swipes their own card on customers' sales: the box holds it and an alert shows within "
            f"minutes at /api/v1/alerts (the day's report: /api/v1/reports/fraud-daily?day=YYYY-MM-DD)")
        for row in rows:
            say(f"  {row['key']}: {row['sales']} sales, {row['tickets']} tickets so far")
        ready = True  # before the line: a Ctrl-C the moment it shows still gets the closing summary
        say(f"  Ready in {time.monotonic() - started:.1f}s. Logs and data in {args.workdir}. Ctrl-C stops it all.")
        if not args.exit_when_ready:
            while True:
                time.sleep(3600)
    except KeyboardInterrupt:
        say("\nstopping...")
    finally:
        bill = demo.sponsors_bill(login) if ready and login is not None else []
        cases = demo.alerts(login) if ready and login is not None else []
        demo.stop_all()
        if ready:  # the simulators wrote their last counters as they stopped
            for line in closing_lines(demo.till_stats(), bill):
                say(line)
            say(fraud_line(cases))
    return 0


if __name__ == "__main__":
    sys.exit(main())
