#!/usr/bin/env python3
"""Benchmarks of registry activity (issue 19). Not part of `cargo test` or CI.

Starts `regauth serve` (a release build with `--features bench-baseline`) on a fresh data
directory, on sled or on PostgreSQL (a private cluster under --work, `fsync` on, started and
stopped here), and measures:

  1. ingestion: --ingest-seconds of `POST /events/default` from --senders keep-alive clients
     at once, each envelope --batch manifest events with new ids (kept, not dropped as layer
     events are). Every envelope must answer 200 with `stored` equal to its events: the
     endpoint answers only once the batch is durable (sled flushed, PostgreSQL committed),
     so events/s here are durable events per second;
  2. filling the store up to --events events (envelopes of 1000, the largest allowed), then
     activity queries at that size: for --query-seconds each, one client asking in a loop,
     p50 / p99 / max of the reply time: the registry's newest page, one actor's (a token's)
     page, and the filtered queries (`since`, a repository pattern, a digest);
  3. the token endpoint with and without events arriving: wrk, --conns connections,
     `GET /auth` with the seeded tokens' credentials, --auth-seconds per cell, alternately
     alone and while --paced-events events/s arrive (envelopes of --batch), --rounds times.

Writes a Markdown report to --out (and stdout). Python's standard library only; reuses the
soak driver's HTTP client and wrk script (scripts/bench/soak.py).

Usage: scripts/bench/events.py [--store sled|postgres] [--events 1000000] [--batch 100]
       [--senders 4] [--bin target/release/regauth] [--seed target/release/regauth-seed]
"""
import argparse
import glob
import json
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import threading
import time
import types
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from soak import WRK_LUA, Client, paced, proc_sample, run_wrk  # noqa: E402

ADMIN = "bench-admin-token-0123456789"
MEDIA = "application/vnd.oci.image.manifest.v1+json"
ACTORS = [f"bench-{i:07d}" for i in range(100)]


def envelope(prefix, n, start):
    """`n` manifest events with ids prefix-start .. prefix-(start+n-1)."""
    now = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime())
    events = []
    for i in range(start, start + n):
        digest = "sha256:%064x" % random.getrandbits(256)
        events.append({
            "id": f"{prefix}-{i}",
            "timestamp": f"{now}.{i % 1000000:06d}Z",
            "action": "push" if i % 4 == 0 else "pull",
            "target": {"mediaType": MEDIA, "size": 1234, "digest": digest,
                       "repository": f"team/app{i % 50}", "tag": f"v{i % 7}"},
            "request": {"addr": "192.0.2.7:40000", "useragent": "bench/1"},
            "actor": {"name": ACTORS[i % len(ACTORS)]},
            "source": {"instanceID": "bench"},
        })
    return json.dumps({"events": events}).encode()


class Sender:
    """Posts envelopes of `batch` new events; counts events stored and reply times."""

    def __init__(self, port, secret, name, batch):
        self.client = Client(port)
        self.headers = {"Authorization": f"Bearer {secret}",
                        "Content-Type": "application/vnd.docker.distribution.events.v1+json"}
        self.name, self.batch, self.next = name, batch, 0
        self.stored, self.failures, self.latencies = 0, 0, []

    def post(self):
        body = envelope(self.name, self.batch, self.next)
        self.next += self.batch
        started = time.monotonic()
        status, data = self.client.request("POST", "/events/default", body, self.headers)
        self.latencies.append(time.monotonic() - started)
        if status == 200 and json.loads(data).get("stored") == self.batch:
            self.stored += self.batch
        else:
            self.failures += 1
            print(f"envelope refused: {status} {data[:200]!r}", file=sys.stderr)


def ingest(port, secret, senders, batch, seconds, tag, target=None):
    """Posts from `senders` threads for `seconds` (or until `target` events): (events/s, senders)."""
    stop = threading.Event()
    all_senders = [Sender(port, secret, f"{tag}{i}", batch) for i in range(senders)]
    stored = lambda: sum(s.stored for s in all_senders)  # noqa: E731

    def loop(s):
        while not stop.is_set() and (target is None or stored() < target):
            s.post()
    threads = [threading.Thread(target=loop, args=(s,)) for s in all_senders]
    started = time.monotonic()
    for t in threads:
        t.start()
    deadline = started + seconds
    while any(t.is_alive() for t in threads) and time.monotonic() < deadline:
        time.sleep(0.1)
    stop.set()
    for t in threads:
        t.join()
    took = time.monotonic() - started
    return stored() / took, all_senders, took


def pct(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * p / 100))] * 1000 if values else 0


def query_latency(port, path, seconds):
    c = Client(port)
    headers = {"Authorization": f"Bearer {ADMIN}"}
    times, total = [], None
    end = time.monotonic() + seconds
    while time.monotonic() < end or len(times) < 5:
        started = time.monotonic()
        status, data = c.request("GET", path, headers=headers)
        times.append(time.monotonic() - started)
        if status != 200:
            raise SystemExit(f"GET {path}: {status} {data[:300]!r}")
        total = json.loads(data).get("total")
    return len(times), pct(times, 50), pct(times, 99), max(times) * 1000, total


def start_postgres(work, port):
    pg_bin = sorted(glob.glob("/usr/lib/postgresql/*/bin"))[-1]
    data, sock = f"{work}/pg/data", f"{work}/pg/socket"
    if not os.path.exists(f"{data}/PG_VERSION"):
        shutil.rmtree(f"{work}/pg", ignore_errors=True)
        os.makedirs(sock)
        subprocess.run(["chown", "-R", "postgres:postgres", f"{work}/pg"], check=True)
        subprocess.run(["runuser", "-u", "postgres", "--", f"{pg_bin}/initdb", "-D", data, "-U",
                        "postgres", "-A", "trust", "-E", "UTF8", "--locale=C"], check=True,
                       capture_output=True)
    subprocess.run(["runuser", "-u", "postgres", "--", f"{pg_bin}/pg_ctl", "-D", data, "-l",
                    f"{work}/pg/postgres.log", "-w", "-o",
                    f"-p {port} -k {sock} -c listen_addresses=127.0.0.1 -c shared_buffers=256MB "
                    f"-c max_connections=200", "start"], check=True, capture_output=True)

    def sql(q):
        subprocess.run(["runuser", "-u", "postgres", "--", f"{pg_bin}/psql", "-X", "-q", "-h", sock,
                        "-p", str(port), "-U", "postgres", "-c", q], check=True, capture_output=True)

    def value(q, db="bench_events"):
        r = subprocess.run(["runuser", "-u", "postgres", "--", f"{pg_bin}/psql", "-X", "-q", "-At",
                            "-h", sock, "-p", str(port), "-U", "postgres", "-d", db, "-c", q],
                           check=True, capture_output=True, text=True)
        return r.stdout.strip()

    def stop():
        subprocess.run(["runuser", "-u", "postgres", "--", f"{pg_bin}/pg_ctl", "-D", data, "-m",
                        "fast", "-w", "stop"], capture_output=True)
    return sql, value, stop


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bin", default="target/release/regauth")
    ap.add_argument("--seed", default="target/release/regauth-seed")
    ap.add_argument("--store", choices=["sled", "postgres"], default="sled")
    ap.add_argument("--work", default=None)
    ap.add_argument("--port", type=int, default=5301)
    ap.add_argument("--tokens", type=int, default=10000)
    ap.add_argument("--events", type=int, default=1000000)
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--senders", type=int, default=4)
    ap.add_argument("--ingest-seconds", type=float, default=20)
    ap.add_argument("--query-seconds", type=float, default=10)
    ap.add_argument("--conns", type=int, default=64)
    ap.add_argument("--auth-seconds", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--paced-events", type=int, default=2000)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    os.chdir(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
    work = os.path.abspath(args.work or f"target/bench-events-{args.store}")
    shutil.rmtree(f"{work}/data", ignore_errors=True)
    os.makedirs(work, exist_ok=True)
    os.chmod(work, 0o755)
    report = []

    def say(line=""):
        print(line, flush=True)
        report.append(line)

    stop_pg = None
    store_toml, seed_url = "", []
    if args.store == "postgres":
        pg_port = args.port + 100
        sql, pg_value, stop_pg = start_postgres(work, pg_port)
        sql("DROP DATABASE IF EXISTS bench_events")
        sql("CREATE DATABASE bench_events")
        url = f"postgres://postgres@127.0.0.1:{pg_port}/bench_events"
        store_toml = f'[store]\nurl = "{url}"\ntls = "disable"\n'
        seed_url = ["--store-url", url, "--flush-every", "10000"]
    server = None
    try:
        creds = f"{work}/creds.txt"
        subprocess.run([args.seed, "--data-dir", f"{work}/data", "--count", str(args.tokens),
                        "--creds", creds, "--sample", str(min(args.tokens, 10000))] + seed_url,
                       check=True, stdout=subprocess.DEVNULL)
        with open(f"{work}/regauth.toml", "w") as f:
            f.write(f'listen = "127.0.0.1:{args.port}"\npublic_url = "http://127.0.0.1:{args.port}"\n'
                    f'data_dir = "{work}/data"\n[admin]\ntoken = "{ADMIN}"\n[jwt]\n'
                    f'key = "{work}/certs/signing.key"\ncertificate = "{work}/certs/signing.crt"\n'
                    f'[activity]\nmax_events_per_registry = {args.events * 2}\n{store_toml}')
        log = open(f"{work}/server.log", "w")
        server = subprocess.Popen([args.bin, "serve", "--config", f"{work}/regauth.toml"],
                                  stdout=log, stderr=log)
        c = Client(args.port)
        for _ in range(600):
            if c.request("GET", "/health")[0] == 200:
                break
            time.sleep(0.1)
        with open(f"{work}/data/events/default.secret") as f:
            secret = f.read().strip()

        say(f"Events benchmark {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}, store "
            f"{args.store}, {os.cpu_count()} CPUs, load average "
            f"{' '.join(open('/proc/loadavg').read().split()[:3])}.")
        say(f"Command: `scripts/bench/events.py {' '.join(sys.argv[1:])}`")
        say()
        say("| ingestion | senders | events per envelope | events/s (durable) | envelope p50 ms | p99 ms |")
        say("|---|---:|---:|---:|---:|---:|")
        for batch in sorted({args.batch, 1000}):
            rate, senders, _ = ingest(args.port, secret, args.senders, batch, args.ingest_seconds,
                                      f"i{batch}-")
            lat = [x for s in senders for x in s.latencies]
            fails = sum(s.failures for s in senders)
            if fails:
                raise SystemExit(f"{fails} envelopes failed")
            say(f"| {args.ingest_seconds:.0f} s | {args.senders} | {batch} | {rate:.0f} | "
                f"{pct(lat, 50):.1f} | {pct(lat, 99):.1f} |")
        say()

        _, _, _, _, have = query_latency(args.port, "/api/v1/registries/default/activity?limit=1", 0)
        if have < args.events:
            rate, _, took = ingest(args.port, secret, args.senders, 1000, 36000, "fill-",
                                   target=args.events - have)
            say(f"Filled to {args.events} events in {took:.0f} s ({rate:.0f} events/s, envelopes of 1000).")
        rss = proc_sample(server.pid)["rss_kb"] / 1024
        say(f"Server VmRSS after filling: {rss:.1f} MB.")
        if args.store == "postgres":
            # The queries are planned from the table's statistics, which autovacuum's ANALYZE
            # writes within about a minute of a bulk load (when a tenth of the rows changed
            # since the last one); before it PostgreSQL plans blind. Measure the steady state.
            waited = time.time()
            while time.time() - waited < 300:
                mod, live = (int(x) for x in pg_value(
                    "SELECT n_mod_since_analyze, n_live_tup FROM pg_stat_user_tables "
                    "WHERE relname = 'regauth_events'").split("|"))
                if live > 0 and mod <= live // 10:
                    break
                time.sleep(2)
            say(f"Waited {time.time() - waited:.0f} s for autovacuum's ANALYZE of regauth_events "
                f"(the statistics the queries are planned from).")
        say()
        since = urllib.parse.quote(time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                 time.gmtime(time.time() - 3600)))
        queries = [
            ("registry, newest 50", "limit=50"),
            ("one actor (a token's activity), newest 50", f"actor={ACTORS[7]}&limit=50"),
            ("one actor, page 10 (offset 450)", f"actor={ACTORS[7]}&limit=50&offset=450"),
            ("since an hour ago, newest 50", f"since={since}&limit=50"),
            ("repository pattern `team/app1*`, newest 50", "repository=team/app1*&limit=50"),
            ("a digest (who pushed this?)", "digest=sha256:" + "0" * 64 + "&limit=50"),
        ]
        say(f"| query at {args.events} events | requests | p50 ms | p99 ms | max ms | total |")
        say("|---|---:|---:|---:|---:|---:|")
        for label, q in queries:
            n, p50, p99, mx, total = query_latency(
                args.port, f"/api/v1/registries/default/activity?{q}", args.query_seconds)
            say(f"| {label} | {n} | {p50:.1f} | {p99:.1f} | {mx:.1f} | {total} |")
        say()

        lua = f"{work}/auth.lua"
        with open(lua, "w") as f:
            f.write(WRK_LUA)
        wrk_args = types.SimpleNamespace(conns=args.conns, rate=10 ** 9, nice=0, port=args.port,
                                         creds=creds)
        say(f"| /auth, {args.conns} connections | round | req/s | p50 ms | p99 ms | events/s arriving |")
        say("|---|---:|---:|---:|---:|---:|")
        per = {"alone": [], "events": []}
        for r in range(1, args.rounds + 1):
            for mode in (["alone", "events"] if r % 2 else ["events", "alone"]):
                stop = threading.Event()
                sender = Sender(args.port, secret, f"a{r}{mode}-", args.batch)
                bg = threading.Thread(target=paced, args=(stop, args.paced_events / args.batch,
                                                          sender.post))
                if mode == "events":
                    bg.start()
                started = time.monotonic()
                res = run_wrk(wrk_args, lua, args.auth_seconds)
                took = time.monotonic() - started
                stop.set()
                if mode == "events":
                    bg.join()
                bad = {k: v for k, v in res["statuses"].items() if k != 200}
                if res["sockerr"] or bad or sender.failures:
                    raise SystemExit(f"/auth failures: {res} {sender.failures}")
                rps = res["requests"] / args.auth_seconds
                per[mode].append(rps)
                say(f"| {mode} | {r} | {rps:.0f} | {res['p50_ms']:.2f} | {res['p99_ms']:.2f} | "
                    f"{sender.stored / took:.0f} |")
        say()
        ratio = statistics.median(per["events"]) / statistics.median(per["alone"])
        say(f"/auth with events arriving / alone (medians of {args.rounds}): {ratio:.3f}.")
    finally:
        if server is not None:
            server.terminate()
            server.wait()
        if stop_pg is not None:
            stop_pg()
    out = args.out or f"{work}/events-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}.md"
    with open(out, "w") as f:
        f.write("\n".join(report) + "\n")


if __name__ == "__main__":
    main()
