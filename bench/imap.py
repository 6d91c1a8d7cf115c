"""IMAP sync throughput: a bare imapclient download against the connector's full sync, on Dovecot.

    python bench/imap.py [--messages 10000] [--seed 1] [--batch-size 200] [--no-rules]
                         [--database-url URL] [--growth [2500,5000,10000,20000]]

Starts a throwaway Dovecot on 127.0.0.1 (tests/dovecot.py; always stopped at the end), fills its
INBOX with N varied messages (inbox/demo/generate.py: seven languages and their charsets, HTML,
attachments, replies), and in one run prints messages/s (and MB/s) for:

- (a) a bare imapclient download of every body: login, SELECT INBOX read-only, SEARCH, FETCH
  `BODY.PEEK[] INTERNALDATE FLAGS RFC822.SIZE` in batches of --batch-size (the ceiling here);
- the connector's fetch alone: `ImapConnector.fetch` iterated, nothing stored;
- normalize only, in one process, on the first 2,000 messages (the cost the workers share);
- (b) the connector's full sync into a fresh store, as `inbox sync` does it: `ImapConnector` +
  `Pipeline` with the example desk's rules (rules/examples/desk.yaml; --no-rules: none) and the
  default ingest workers, `fetch(pipeline.cursors(name))` -> `ingest_many` -> `acknowledge`.
  With it: its ratio to (a), where the main process's time went (waiting for the fetch,
  submitting, waiting for the normalizing workers, storing), the CPU of each party and how busy
  the machine's cores were, the resident memory as it went and at its peak (main process and
  each worker), and how many messages the store holds afterwards (it must be exactly N).

Each fetch-alone and full-sync run happens in a fresh process (spawn), so its peak RSS is that of
a sync alone, imports and the store's migrations included, as for `inbox sync`. The store is a
fresh SQLite file in a temporary directory, or with --database-url a PostgreSQL database (a fresh
schema, dropped afterwards) or a SQLite file that must not exist yet.

--growth instead prints one line per mailbox size (the same Dovecot, filled further between
two sizes; a fresh store each time): (a), (b), their ratio and the peak RSS of the main process
and of the largest worker, which must stay flat as the mailbox grows.

The aim (the issue this serves): (b) at least 30% of (a) on two cores, since fetching and
parsing can overlap, with the main process below 300 MB RSS for 10,000 messages and flat as the
mailbox grows. For scale: getmail6 took 105-140 s for the same 10,000 messages here. A benchmark,
not a test: it prints figures, and exits 1 only when the store does not hold every message.
"""

from __future__ import annotations

import argparse
import itertools
import multiprocessing
import os
import resource
import tempfile
import time
import traceback
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import _checkout  # noqa: F401  (first: see bench/_checkout.py)
from imapclient import IMAPClient
from ingest import postgres_schema, rss_mb
from sqlalchemy import func, make_url, select

from connectors.imap import ImapConfig, ImapConnector
from inbox.config import IngestSettings, Settings
from inbox.demo.generate import generate_messages
from inbox.log_setup import configure_logging
from inbox.normalize.email import normalize_email
from inbox.pipeline.ingest import StageSeconds, routed_pipeline
from inbox.raw import Batch
from inbox.store.batch_writer import BatchResult
from inbox.store.models import Message, RawRecord
from rules import example_rules_path
from rules.holder import RulesInForce
from tests.dovecot import Dovecot, descendants

PASSWORD_ENV = "INBOX_BENCH_IMAP_PASSWORD"
CONNECTOR = "bench-imap"
FETCH_ITEMS = [b"BODY.PEEK[]", b"INTERNALDATE", b"FLAGS", b"RFC822.SIZE"]
AIM = 0.30
RSS_AIM_MB = 300
NORMALIZE_SAMPLE = 2_000
GROWTH_SIZES = "2500,5000,10000,20000"
LABEL = 44


# -- measuring ----------------------------------------------------------------------------------


def peak_rss_mb() -> float:
    """Peak resident memory of this process, in MB (ru_maxrss is in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e6


def vm_hwm_mb(pid: int) -> float:
    """Peak resident memory of a live process (VmHWM, in KiB), in MB."""
    with open(f"/proc/{pid}/status") as handle:
        for row in handle:
            if row.startswith("VmHWM:"):
                return int(row.split()[1]) * 1024 / 1e6
    return 0.0


def process_rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/statm") as handle:
        pages = int(handle.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 1e6


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a live process so far."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def dovecot_cpu(supervisor: int) -> float:
    """CPU so far of every live Dovecot process (the IMAP session serving us among them)."""
    return sum(cpu_seconds(pid) for pid in descendants(supervisor))


def machine_ticks() -> tuple[int, int]:
    """(busy, total) jiffies of all CPUs since boot, from /proc/stat."""
    with open("/proc/stat") as handle:
        values = [int(v) for v in handle.readline().split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return sum(values) - idle, sum(values)


def own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def line(label: str, n: int, seconds: float, extra: str = "") -> float:
    per_second = n / seconds if seconds else 0.0
    print(f"{label:<{LABEL}} {per_second:>8,.0f} msg/s   ({seconds:6.2f} s){extra}")
    return per_second


def note(text: str) -> None:
    print(f"{'':<{LABEL}} {text}")


# -- (a) the bare download ------------------------------------------------------------------------


def bare_download(server: Dovecot, batch_size: int) -> dict[str, Any]:
    """Every body through imapclient alone, in batches; counts and times it."""
    dovecot_before = dovecot_cpu(_supervisor_pid(server))
    cpu_before = time.process_time()
    started = time.perf_counter()
    client = IMAPClient(server.host, port=server.port, ssl=False, timeout=60)
    count = size = 0
    try:
        client.login(server.user, server.password)
        client.select_folder("INBOX", readonly=True)
        uids = client.search(["ALL"])
        for start in range(0, len(uids), batch_size):
            for data in client.fetch(uids[start : start + batch_size], FETCH_ITEMS).values():
                size += len(data[b"BODY[]"])
                count += 1
        dovecot_after = dovecot_cpu(_supervisor_pid(server))  # before LOGOUT ends the session
    finally:
        client.logout()
    return {
        "messages": count,
        "bytes": size,
        "seconds": time.perf_counter() - started,
        "client_cpu": time.process_time() - cpu_before,
        "dovecot_cpu": dovecot_after - dovecot_before,
    }


def warm_up(server: Dovecot) -> None:
    """One untimed pass over the folder's metadata, so that Dovecot's scan of the new files and
    its index are not charged to whichever measurement comes first."""
    with server.session() as client:
        client.select_folder("INBOX", readonly=True)
        uids = client.search(["ALL"])
        for start in range(0, len(uids), 2_000):  # a longer UID list is a command too long
            client.fetch(uids[start : start + 2_000], [b"INTERNALDATE", b"FLAGS", b"RFC822.SIZE"])


def _supervisor_pid(server: Dovecot) -> int:
    supervisor = server._supervisor
    assert supervisor is not None, "Dovecot is not running"
    return supervisor.pid


# -- the connector, in a fresh process ------------------------------------------------------------


def in_fresh_process(target: Callable[..., dict[str, Any]], *args: Any) -> dict[str, Any]:
    """Run `target(*args)` in a new interpreter (spawn) and return its answer.

    Not a pool worker: those are daemonic and may not start the pipeline's own workers."""
    context = multiprocessing.get_context("spawn")
    receiver, sender = context.Pipe(duplex=False)
    process = context.Process(target=_child, args=(sender, target, args), name=target.__name__)
    process.start()
    sender.close()
    try:
        kind, value = receiver.recv()
    except EOFError:
        kind, value = "error", "the process died before answering"
    finally:
        process.join()
        receiver.close()
    if kind != "ok":
        raise RuntimeError(f"{target.__name__} failed:\n{value}")
    return dict(value)


def _child(sender: Any, target: Callable[..., dict[str, Any]], args: tuple[Any, ...]) -> None:
    configure_logging("warning", "console")
    try:
        sender.send(("ok", target(*args)))
    except BaseException:
        sender.send(("error", traceback.format_exc()))
    finally:
        sender.close()


def connector_for(host: str, port: int) -> ImapConnector:
    return ImapConnector(
        ImapConfig(
            name=CONNECTOR,
            type="imap",
            host=host,
            port=port,
            security="none",  # 127.0.0.1 only
            username="support",
            password={"env": PASSWORD_ENV},
            idle=False,
            timeout_seconds=60,
        )
    )


def fetch_only(host: str, port: int, batch_size: int) -> dict[str, Any]:
    """`ImapConnector.fetch` iterated to the end, nothing stored."""
    connector = connector_for(host, port)
    cpu_before = own_cpu()
    started = time.perf_counter()
    count = size = batches = 0
    try:
        for batch in connector.fetch({}, batch_size):
            batches += 1
            count += len(batch.messages)
            size += sum(len(raw.payload) for raw in batch.messages)
    finally:
        connector.close()
    return {
        "messages": count,
        "bytes": size,
        "batches": batches,
        "seconds": time.perf_counter() - started,
        "cpu": own_cpu() - cpu_before,
        "peak_rss": peak_rss_mb(),
    }


def stage_times(stages: StageSeconds) -> dict[str, float]:
    """The pipeline's own account of the main process's time, in the report's words."""
    return {
        "submit (dedupe check; inline normalize)": stages.preparing,
        "waiting for the normalizing workers": stages.waiting,
        "store (one transaction, rules)": stages.storing,
    }


def timed(batches: Iterable[Batch], times: Counter[str]) -> Iterator[Batch]:
    """The connector's batches, with the time spent getting each (IMAP round trips, imapclient
    parsing the answer, hashing) added to `times`."""
    iterator = iter(batches)
    while True:
        started = time.perf_counter()
        try:
            batch = next(iterator)
        except StopIteration:
            times["fetch (connector, in the main process)"] += time.perf_counter() - started
            return
        times["fetch (connector, in the main process)"] += time.perf_counter() - started
        yield batch


def full_sync(
    host: str,
    port: int,
    supervisor: int,
    url: str,
    batch_size: int,
    rules: bool,
    sample_every: int,
) -> dict[str, Any]:
    """What `inbox sync` does for one IMAP connector, into a fresh store, measured."""
    settings = Settings(database_url=url, ingest={"batch_size": batch_size})
    desk = RulesInForce(example_rules_path()) if rules else None
    wired = routed_pipeline(settings, desk)
    wired.migrate()
    pipeline = wired.pipeline
    connector = connector_for(host, port)
    times: Counter[str] = Counter()
    samples: list[str] = []
    worker_peaks: dict[int, float] = {}
    worker_rss: list[float] = []
    totals = BatchResult()
    fetched = size = 0
    next_sample = sample_every
    dovecot_before = dovecot_cpu(supervisor)
    cpu_before = own_cpu()
    busy_before, total_before = machine_ticks()
    started = time.perf_counter()
    try:
        batches = connector.fetch(pipeline.cursors(CONNECTOR), settings.ingest.batch_size)
        for batch, result in pipeline.ingest_many(timed(batches, times)):
            totals.add(result)
            acknowledged = time.perf_counter()
            connector.acknowledge(batch)
            times["acknowledge"] += time.perf_counter() - acknowledged
            fetched += len(batch.acknowledge) or len(batch.messages)
            size += sum(len(raw.payload) for raw in batch.messages)
            if fetched >= next_sample:
                workers = multiprocessing.active_children()
                worker_rss.append(sum(process_rss_mb(w.pid) for w in workers if w.pid))
                samples.append(f"{fetched:,}: {rss_mb():.0f}")
                next_sample += sample_every
        seconds = time.perf_counter() - started
        busy_after, total_after = machine_ticks()
        dovecot_used = dovecot_cpu(supervisor) - dovecot_before  # before LOGOUT ends it
        for worker in multiprocessing.active_children():
            if worker.pid:
                worker_peaks[worker.pid] = vm_hwm_mb(worker.pid)
    finally:
        connector.close()
        wired.pipeline.close()  # its workers, before the CPU is read
    main_cpu = own_cpu() - cpu_before
    with wired, wired.readers() as session:
        messages = session.scalar(select(func.count()).select_from(Message))
        raws = session.scalar(select(func.count()).select_from(RawRecord))
    return {
        "messages": fetched,
        "bytes": size,
        "seconds": seconds,
        "stored": totals.stored,
        "duplicates": totals.duplicates,
        "raw_only": totals.raw_only,
        "parse_errors": totals.parse_errors,
        "in_store": messages,
        "raw_in_store": raws,
        "times": dict(times) | stage_times(pipeline.stage_seconds),
        "main_cpu": main_cpu,
        "workers_cpu": children_cpu(),  # the pool is shut down: its workers are waited for
        "dovecot_cpu": dovecot_used,
        "busy": (busy_after - busy_before) / max(total_after - total_before, 1),
        "machine_cpu": (busy_after - busy_before) / os.sysconf("SC_CLK_TCK"),
        "cores": os.cpu_count() or 1,
        "workers": settings.ingest.workers,
        "rules": len(desk.current.ruleset.rules) if desk else 0,
        "samples": samples,
        "worker_rss": worker_rss,
        "peak_rss": peak_rss_mb(),
        "worker_peaks": sorted(worker_peaks.values()),
    }


# -- the store ------------------------------------------------------------------------------------


class Stores:
    """A fresh store per sync: a SQLite file, or a PostgreSQL schema dropped afterwards."""

    def __init__(self, base: str | None, scratch: str) -> None:
        self.base = base
        self.scratch = scratch
        self.dropping: list[Callable[[], None]] = []
        self.count = 0

    @property
    def description(self) -> str:
        if self.base is None:
            return "a fresh SQLite file in a temporary directory"
        if make_url(self.base).get_backend_name() == "sqlite":
            return f"fresh SQLite files {self.base}.N"
        return f"PostgreSQL {make_url(self.base).render_as_string()}, a fresh schema per run"

    def fresh(self) -> tuple[str, Callable[[], None]]:
        self.count += 1
        if self.base is None:
            return f"sqlite:///{self.scratch}/imap-{self.count}.db", lambda: None
        if make_url(self.base).get_backend_name() == "sqlite":
            url = f"{self.base}.{self.count}"
            database = make_url(url).database
            if database and Path(database).expanduser().exists():
                raise SystemExit(f"{database} exists: the store must be fresh")
            return url, lambda: None
        return postgres_schema(self.base)


# -- the runs -------------------------------------------------------------------------------------


def fill(server: Dovecot, messages: Iterator[bytes], n: int) -> tuple[int, int]:
    """Deliver the next `n` messages; (count, bytes)."""
    size = 0

    def counted() -> Iterator[bytes]:
        nonlocal size
        for payload in itertools.islice(messages, n):
            size += len(payload)
            yield payload

    return server.deliver_many(counted()), size


def normalize_rate(n: int, seed: int) -> None:
    languages = IngestSettings().languages
    payloads = list(generate_messages(n, seed=seed))
    started = time.perf_counter()
    for payload in payloads:
        normalize_email(payload, languages=languages)
    line(f"normalize only, one process (first {n:,})", n, time.perf_counter() - started)


def report_sync(sync: dict[str, Any], bare_rate: float, n: int, label: str) -> bool:
    """Prints the sync's figures; whether its store holds every message (else they are void)."""
    rate = line(
        label,
        sync["messages"],
        sync["seconds"],
        f"   {sync['bytes'] / 1e6 / sync['seconds']:5.1f} MB/s",
    )
    ratio = rate / bare_rate if bare_rate else 0.0
    met = "met" if ratio >= AIM else "NOT met"
    note(f"{ratio:.0%} of (a): the aim of {AIM:.0%} is {met}")
    wall = sync["seconds"]
    note("the main process's wall time went to:")
    for name, seconds in sorted(sync["times"].items(), key=lambda item: -item[1]):
        note(f"  {seconds:6.2f} s {seconds / wall:4.0%}  {name}")
    ours = sync["main_cpu"] + sync["workers_cpu"] + sync["dovecot_cpu"]
    note(
        f"CPU: main {sync['main_cpu']:.1f} s, {sync['workers']} worker(s) "
        f"{sync['workers_cpu']:.1f} s, Dovecot {sync['dovecot_cpu']:.1f} s; "
        f"the {sync['cores']} cores {sync['busy']:.0%} busy "
        f"(other processes: {max(sync['machine_cpu'] - ours, 0):.1f} s)"
    )
    note(f"RSS as it went (main process, MB): {', '.join(sync['samples'])}")
    if sync["worker_rss"]:
        note(
            f"RSS as it went (all workers, MB): {', '.join(f'{v:.0f}' for v in sync['worker_rss'])}"
        )
    peaks = ", ".join(f"{v:.0f}" for v in sync["worker_peaks"]) or "none"
    fits = "below" if sync["peak_rss"] < RSS_AIM_MB else "NOT below"
    note(
        f"peak RSS: main process {sync['peak_rss']:.0f} MB ({fits} {RSS_AIM_MB} MB), "
        f"workers {peaks} MB"
    )
    exact = "as expected" if sync["in_store"] == n else f"EXPECTED {n:,}"
    note(
        f"the store holds {sync['in_store']:,} messages ({exact}), {sync['raw_in_store']:,} raw; "
        f"stored {sync['stored']:,}, duplicates {sync['duplicates']}, raw only "
        f"{sync['raw_only']}, parse errors {sync['parse_errors']}"
    )
    return bool(sync["in_store"] == n)


def one_size(args: argparse.Namespace, server: Dovecot, stores: Stores) -> bool:
    n = args.messages
    warm_up(server)
    bare = bare_download(server, args.batch_size)
    bare_rate = line(
        "(a) bare imapclient download",
        bare["messages"],
        bare["seconds"],
        f"   {bare['bytes'] / 1e6 / bare['seconds']:5.1f} MB/s",
    )
    note(f"CPU: client {bare['client_cpu']:.1f} s, Dovecot {bare['dovecot_cpu']:.1f} s")
    alone = in_fresh_process(fetch_only, server.host, server.port, args.batch_size)
    fetch_rate = line(
        "connector fetch alone (nothing stored)",
        alone["messages"],
        alone["seconds"],
        f"   {alone['bytes'] / 1e6 / alone['seconds']:5.1f} MB/s",
    )
    note(
        f"{fetch_rate / bare_rate:.0%} of (a); {alone['batches']} batches; "
        f"CPU {alone['cpu']:.1f} s; peak RSS {alone['peak_rss']:.0f} MB (imports included)"
    )
    normalize_rate(min(n, NORMALIZE_SAMPLE), args.seed)
    url, drop = stores.fresh()
    try:
        sync = in_fresh_process(
            full_sync,
            server.host,
            server.port,
            _supervisor_pid(server),
            url,
            args.batch_size,
            not args.no_rules,
            max(n // 4, 1),
        )
    finally:
        drop()
    rules = f"{sync['rules']} rules" if sync["rules"] else "no rules"
    return report_sync(sync, bare_rate, n, f"(b) full sync, {sync['workers']} workers, {rules}")


def growth(args: argparse.Namespace, server: Dovecot, stores: Stores) -> bool:
    sizes = sorted({int(part.replace("_", "")) for part in args.growth.split(",") if part})
    messages = generate_messages(sizes[-1], seed=args.seed)
    print(
        f"{'messages':>9} {'(a) msg/s':>10} {'(b) msg/s':>10} {'(b)/(a)':>8} "
        f"{'main peak MB':>13} {'worker peaks MB':>16} {'in store':>9}"
    )
    delivered = 0
    exact = True
    for size in sizes:
        delivered += fill(server, messages, size - delivered)[0]
        warm_up(server)
        bare = bare_download(server, args.batch_size)
        bare_rate = bare["messages"] / bare["seconds"]
        url, drop = stores.fresh()
        try:
            sync = in_fresh_process(
                full_sync,
                server.host,
                server.port,
                _supervisor_pid(server),
                url,
                args.batch_size,
                not args.no_rules,
                max(size // 4, 1),
            )
        finally:
            drop()
        rate = sync["messages"] / sync["seconds"]
        workers = "/".join(f"{v:.0f}" for v in sync["worker_peaks"]) or "-"
        print(
            f"{size:>9,} {bare_rate:>10,.0f} {rate:>10,.0f} {rate / bare_rate:>8.0%} "
            f"{sync['peak_rss']:>13.0f} {workers:>16} {sync['in_store']:>9,}"
        )
        note(f"main RSS as it went (MB): {', '.join(sync['samples'])}")
        exact = exact and sync["in_store"] == size
    return exact


def one_run(args: argparse.Namespace, server: Dovecot, stores: Stores) -> bool:
    started = time.perf_counter()
    count, size = fill(server, generate_messages(args.messages, seed=args.seed), args.messages)
    print(
        f"{count:,} messages, {size / 1e6:.1f} MB, generated and delivered in "
        f"{time.perf_counter() - started:.1f} s"
    )
    return one_size(args, server, stores)


def main() -> None:
    parser = argparse.ArgumentParser(description="IMAP sync throughput against a local Dovecot")
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--batch-size",
        type=int,
        default=IngestSettings.model_fields["batch_size"].default,
        help="messages per FETCH and per stored batch (default: the ingest default)",
    )
    parser.add_argument(
        "--database-url",
        help="PostgreSQL (a fresh schema per run, dropped after) or a SQLite file that must not "
        "exist; default: a fresh SQLite file in a temporary directory",
    )
    parser.add_argument(
        "--growth",
        nargs="?",
        const=GROWTH_SIZES,
        metavar="SIZES",
        help=f"print (a), (b) and peak RSS at these mailbox sizes instead (default {GROWTH_SIZES})",
    )
    parser.add_argument("--no-rules", action="store_true", help="sync without the example rules")
    args = parser.parse_args()
    configure_logging("warning", "console")
    os.environ[PASSWORD_ENV] = Dovecot.password  # the connector's secret source; children inherit
    server = Dovecot()
    try:
        server.start()
        with tempfile.TemporaryDirectory(prefix="inbox-bench-imap-") as scratch:
            stores = Stores(args.database_url, scratch)
            print(
                f"Dovecot on {server.host}:{server.port}; batch size {args.batch_size}; "
                f"store: {stores.description}; {os.cpu_count()} cores, load average "
                f"{os.getloadavg()[0]:.2f} (other work on the machine skews every figure)"
            )
            exact = growth(args, server, stores) if args.growth else one_run(args, server, stores)
    finally:
        server.close()
    if not exact:
        raise SystemExit("the store did not hold every message: the figures measure a loss")


if __name__ == "__main__":
    main()
