"""The SMS webhook receiver under load: signed Twilio webhooks from many clients at once.

    python bench/sms.py [--messages 5000] [--duplicates 500] [--clients 20]

Runs the daemon (`inbox.service.daemon.Daemon`, as `inbox run` does) with the twilio connector
and its webhook receiver on 127.0.0.1, a fresh SQLite store, and the fake Twilio REST API of the
test suite behind the connector's catch-up (tests/fake_twilio.py). Then N signed webhooks
(X-Twilio-Signature by Twilio's algorithm, for the connector's public URL) plus D second
deliveries of some of them, shuffled, are posted by C concurrent clients over keep-alive
connections. It prints requests/s, the latency of the receiver's answer (median, p95, max),
how long until the daemon had stored everything, and the count stored, which must be N: each
message once, whatever the duplicates (exit 1 otherwise). A benchmark, not a test: it prints
figures and asserts only that count.
"""

from __future__ import annotations

import argparse
import http.client
import random
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlencode, urlsplit

import _checkout  # noqa: F401  (first: see bench/_checkout.py)
from sqlalchemy import func, select

from connectors.twilio_sms import TwilioSmsConfig, TwilioSmsConnector
from inbox.config import Settings
from inbox.log_setup import configure_logging
from inbox.secrets import SecretSource
from inbox.service.daemon import Daemon
from inbox.store.db import make_engine, make_sessionmaker
from inbox.store.models import Message
from tests.fake_twilio import FakeTwilio

OURS = "+358942424242"
PUBLIC_URL = "https://desk.example.com/webhooks/twilio/sms"
TEXTS = [
    "Hei, tilaukseni ei ole vielä tullut.",
    "Tere, arve on vale, palun parandage.",
    "Hej, jag vill byta leveransadress.",
    "Здравствуйте, не могу войти в аккаунт.",
    "Γεια σας, η παραγγελία μου καθυστερεί.",
    "Hi, the app crashes when I open my invoice.",
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--duplicates", type=int, default=500)
    parser.add_argument("--clients", type=int, default=20)
    args = parser.parse_args()
    configure_logging("error", "console")
    with tempfile.TemporaryDirectory() as directory, FakeTwilio(numbers=(OURS,)) as twilio:
        sys.exit(0 if run(args, Path(directory), twilio) else 1)


def run(args: argparse.Namespace, root: Path, twilio: FakeTwilio) -> bool:
    token_file = root / "twilio-token"
    token_file.write_text(twilio.auth_token)
    url = f"sqlite:///{root / 'inbox.db'}"
    settings = Settings(
        database_url=url, data_dir=root, ingest={"workers": 0}, web={"listen": "127.0.0.1:0"}
    )
    connector = TwilioSmsConnector(
        TwilioSmsConfig(
            name="sms",
            type="twilio",
            account_sid=twilio.account_sid,
            auth_token=SecretSource(file=token_file),
            numbers=[OURS],
            public_url=PUBLIC_URL,
            api_url=twilio.url,
            spool_dir=root / "spool",
            catchup_seconds=3600,  # the webhooks are measured, not the catch-up
        )
    )
    daemon = Daemon(settings, [connector])
    thread = threading.Thread(target=daemon.run, daemon=True)
    thread.start()
    while daemon.web is None:
        time.sleep(0.01)
    time.sleep(0.5)  # the first catch-up (an empty log) out of the way

    print(f"preparing {args.messages:,} signed webhooks and {args.duplicates:,} duplicates")
    requests: list[bytes] = []
    signatures: list[str] = []
    rng = random.Random(1)
    for number in range(args.messages):
        sid = f"SM{number:032x}"
        params = {
            "MessageSid": sid,
            "SmsSid": sid,
            "AccountSid": twilio.account_sid,
            "From": f"+35840{rng.randrange(10**7):07d}",
            "To": OURS,
            "Body": f"{TEXTS[number % len(TEXTS)]} ({number})",
            "NumMedia": "0",
            "NumSegments": "1",
            "SmsStatus": "received",
            "ApiVersion": "2010-04-01",
        }
        requests.append(urlencode(params).encode())
        signatures.append(twilio.sign(PUBLIC_URL, params))
    order = list(range(args.messages)) + rng.sample(range(args.messages), args.duplicates)
    rng.shuffle(order)

    latencies: list[float] = []
    statuses: list[int] = []
    lock = threading.Lock()
    target = urlsplit(daemon.web.url)

    def client(indexes: list[int]) -> None:
        connection = http.client.HTTPConnection(target.hostname, target.port, timeout=30)
        mine_latency, mine_status = [], []
        for index in indexes:
            started = time.perf_counter()
            connection.request(
                "POST",
                "/webhooks/twilio/sms",
                body=requests[index],
                headers={
                    "Content-Type": "application/x-www-form-urlencoded",
                    "X-Twilio-Signature": signatures[index],
                },
            )
            response = connection.getresponse()
            response.read()
            mine_latency.append(time.perf_counter() - started)
            mine_status.append(response.status)
        connection.close()
        with lock:
            latencies.extend(mine_latency)
            statuses.extend(mine_status)

    shares = [order[i :: args.clients] for i in range(args.clients)]
    clients = [threading.Thread(target=client, args=(share,)) for share in shares]
    started = time.perf_counter()
    for each in clients:
        each.start()
    for each in clients:
        each.join()
    posted = time.perf_counter() - started

    engine = make_engine(url)
    readers = make_sessionmaker(engine)

    def stored() -> int:
        with readers() as session:
            return int(session.scalar(select(func.count()).select_from(Message)) or 0)

    deadline = time.monotonic() + 300
    while stored() < args.messages and time.monotonic() < deadline:
        time.sleep(0.1)
    all_stored = time.perf_counter() - started
    time.sleep(1.0)  # anything stored twice would show now
    count = stored()
    daemon.stopping.set()
    daemon.wake.set()
    thread.join(60)
    engine.dispose()

    ordered = sorted(latencies)
    p95 = ordered[int(len(ordered) * 0.95)]
    print(
        f"{len(order):,} requests from {args.clients} clients in {posted:.2f} s: "
        f"{len(order) / posted:,.0f} requests/s; answers "
        f"{dict(sorted((s, statuses.count(s)) for s in set(statuses)))}"
    )
    print(
        f"receiver latency: median {statistics.median(ordered) * 1000:.1f} ms, "
        f"p95 {p95 * 1000:.1f} ms, max {ordered[-1] * 1000:.1f} ms"
    )
    print(f"all stored {all_stored:.2f} s after the first request")
    ok = count == args.messages
    print(f"stored {count:,} of {args.messages:,}: " + ("each once" if ok else "NOT each once"))
    return ok


if __name__ == "__main__":
    main()
