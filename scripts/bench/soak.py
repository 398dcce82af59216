#!/usr/bin/env python3
"""The soak test's driver (scripts/bench/soak.sh sets up the build, the seeded store and the config).

Starts `regauth serve`, runs a mixed load against it for --duration seconds and records,
every --interval seconds, the server's RSS, open file descriptors, threads and CPU, and per
kind of request the count, the statuses and (token requests) p50/p99 latency. Writes
soak.csv, soak.md (table and summary) and soak.svg to --out.

The load, all at once:
  - token requests: wrk (2 threads, --conns connections), `GET /auth` with the Basic
    credentials of a seeded token drawn at random, rate-limited to about --rate per second;
    wrk runs once per interval, so each interval has its own latency percentiles;
  - logins with refresh tokens: `POST /auth` grant_type=password with access_type=offline,
    then three grant_type=refresh_token with the refresh token it returned;
  - admin churn: create, patch, replace, rotate, delete and list tokens through the admin API
    (some created with an expiry an hour ahead);
  - failing logins: wrong passwords for seeded names and unknown names, from 127.0.0.2, so
    the denial (and throttling) paths run without touching the other clients' address;
  - expiry sweeps: the store is seeded with tokens expiring throughout the run, so the
    server's sweep deletes some every time it runs.
Python's standard library only.
"""
import argparse
import base64
import collections
import csv
import http.client
import json
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.parse

SERVICE = "registry.local"


class Counters:
    """Thread-safe counts keyed by (kind, status)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.c = collections.Counter()

    def add(self, kind, status):
        with self.lock:
            self.c[(kind, status)] += 1

    def snapshot(self):
        with self.lock:
            return collections.Counter(self.c)


class Client:
    """One keep-alive HTTP/1.1 connection, reopened after any error."""

    def __init__(self, port, source="127.0.0.1"):
        self.port = port
        self.source = source
        self.conn = None

    def request(self, method, path, body=None, headers=None):
        """Returns (status, body bytes); status 0 for a socket error or timeout."""
        for _ in range(2):
            try:
                if self.conn is None:
                    self.conn = http.client.HTTPConnection(
                        "127.0.0.1", self.port, timeout=30, source_address=(self.source, 0))
                self.conn.request(method, path, body=body, headers=headers or {})
                r = self.conn.getresponse()
                data = r.read()
                if r.getheader("connection", "").lower() == "close":
                    self.conn.close()
                    self.conn = None
                return r.status, data
            except (OSError, http.client.HTTPException):
                if self.conn is not None:
                    self.conn.close()
                self.conn = None
        return 0, b""


def paced(stop, per_second, step):
    """Calls step() about per_second times a second until stop is set."""
    period = 1.0 / per_second
    next_at = time.monotonic()
    while not stop.is_set():
        step()
        next_at += period
        delay = next_at - time.monotonic()
        if delay > 0:
            stop.wait(delay)
        else:
            next_at = time.monotonic()


def admin_churn(stop, port, admin_token, rate, counters):
    c = Client(port)
    h = {"Authorization": f"Bearer {admin_token}", "Content-Type": "application/json"}
    base = "/api/v1/registries/default/tokens"
    pool = []  # (id, name)
    serial = [0]

    def body(name, expiring):
        props = {
            "name": name,
            "scopes": [{"type": "repository", "name": f"churn/{name}/*",
                        "actions": random.choice([["pull"], ["pull", "push"], ["pull", "delete"]])}],
        }
        if expiring:
            at = time.gmtime(time.time() + 3600 + 120)
            props["expiryDate"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", at)
        return {"properties": props}

    def step():
        r = random.random()
        if len(pool) < 40 or (r < 0.30 and len(pool) < 150):
            serial[0] += 1
            name = f"churn-{serial[0]:07d}"
            s, data = c.request("POST", base, json.dumps(body(name, random.random() < 0.5)), h)
            counters.add("admin_create", s)
            if s == 201:
                pool.append((json.loads(data)["id"], name))
        elif r < 0.50:
            tid, _ = random.choice(pool)
            patch = {"status": random.choice(["enabled", "disabled"])}
            s, _ = c.request("PATCH", f"{base}/{tid}", json.dumps(patch), h)
            counters.add("admin_patch", s)
        elif r < 0.62:
            tid, name = random.choice(pool)
            s, _ = c.request("PUT", f"{base}/{tid}", json.dumps(body(name, False)), h)
            counters.add("admin_put", s)
        elif r < 0.75:
            tid, _ = random.choice(pool)
            s, _ = c.request("POST", f"{base}/{tid}/credentials",
                             json.dumps({"gracePeriodSeconds": 60}), h)
            counters.add("admin_rotate", s)
        elif r < 0.95:
            tid, _ = pool.pop(random.randrange(len(pool)))
            s, _ = c.request("DELETE", f"{base}/{tid}", None, h)
            counters.add("admin_delete", s)
        else:
            s, _ = c.request("GET", f"{base}?limit=100&offset={random.randrange(0, 1200)}", None, h)
            counters.add("admin_list", s)

    paced(stop, rate, step)


def refresh_logins(stop, port, creds, rate, counters):
    """A password login asking for a refresh token, then three refresh grants with it."""
    c = Client(port)
    h = {"Content-Type": "application/x-www-form-urlencoded"}
    # Twenty tokens: their refresh tokens reach the per-token cap within minutes, so the
    # store's share of refresh grants stops growing early in the run.
    users = creds[:20]

    def step():
        user, password = random.choice(users)
        form = urllib.parse.urlencode({
            "grant_type": "password", "service": SERVICE, "client_id": "soak",
            "access_type": "offline", "username": user, "password": password,
            "scope": "repository:bench/app:pull"})
        s, data = c.request("POST", "/auth", form, h)
        counters.add("login", s)
        if s != 200:
            return
        refresh = json.loads(data).get("refresh_token")
        for _ in range(3):
            form = urllib.parse.urlencode({
                "grant_type": "refresh_token", "service": SERVICE, "client_id": "soak",
                "refresh_token": refresh, "scope": "repository:bench/app:pull,push"})
            s, _ = c.request("POST", "/auth", form, h)
            counters.add("refresh", s)

    paced(stop, rate, step)


def failing_logins(stop, port, creds, rate, counters):
    """Wrong passwords, from 127.0.0.2 (the other clients use 127.0.0.1)."""
    c = Client(port, source="127.0.0.2")
    victims = [u for u, _ in creds[100:105]]

    def step():
        if random.random() < 0.7:
            user = random.choice(victims)
        else:
            user = f"nobody-{random.randrange(1_000_000)}"
        wrong = "rga_" + "".join(random.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(49))
        auth = base64.b64encode(f"{user}:{wrong}".encode()).decode()
        s, _ = c.request("GET", f"/auth?service={SERVICE}&scope=repository:bench/app:pull",
                         None, {"Authorization": f"Basic {auth}"})
        counters.add("bad_login", s)

    paced(stop, rate, step)


class LogTally(threading.Thread):
    """Reads the server's log, counting lines and bytes by level and the sweep's deletions;
    keeps lines that are not INFO (at most 5000) in a file, and the last 200 lines."""

    LEVEL = re.compile(rb"\s(TRACE|DEBUG|INFO|WARN|ERROR)\s")

    def __init__(self, stream, keep_path):
        super().__init__(daemon=True)
        self.stream = stream
        self.keep = open(keep_path, "wb")
        self.kept = 0
        self.lock = threading.Lock()
        self.c = collections.Counter()
        self.tail = collections.deque(maxlen=200)

    def run(self):
        for line in self.stream:
            m = self.LEVEL.search(line)
            level = m.group(1).decode() if m else "other"
            with self.lock:
                self.c["log_lines"] += 1
                self.c["log_bytes"] += len(line)
                self.c[f"log_{level.lower()}"] += 1
                if b"expired token deleted" in line:
                    self.c["swept"] += 1
                self.tail.append(line)
            if level != "INFO" and self.kept < 5000:
                self.keep.write(line)
                self.keep.flush()
                self.kept += 1

    def snapshot(self):
        with self.lock:
            return collections.Counter(self.c)


def proc_sample(pid):
    status = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            status[k] = v.strip()
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    cpu_ticks = int(fields[11]) + int(fields[12])  # utime + stime
    return {
        "rss_kb": int(status["VmRSS"].split()[0]),
        "hwm_kb": int(status["VmHWM"].split()[0]),
        "threads": int(status["Threads"]),
        "fds": len(os.listdir(f"/proc/{pid}/fd")),
        "cpu_s": cpu_ticks / os.sysconf("SC_CLK_TCK"),
    }


def dir_kb(path):
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            try:
                total += os.stat(os.path.join(root, name)).st_blocks * 512
            except OSError:
                pass
    return total // 1024


WRK_LUA = r"""
local creds = {}
local path
local threads = {}
local pause_ms = 0
function setup(thread)
    table.insert(threads, thread)
    thread:set("id", #threads)
end
function init(args)
    path = args[1]
    for line in io.lines(args[2]) do creds[#creds + 1] = line end
    pause_ms = tonumber(args[3])
    statuses = {}
    math.randomseed(os.time() * 1000 + (id or 0))
end
function delay()
    return pause_ms
end
function request()
    return wrk.format("GET", path, { ["Authorization"] = creds[math.random(#creds)] })
end
function response(status, headers, body)
    statuses[status] = (statuses[status] or 0) + 1
end
function done(summary, latency, requests)
    local all = {}
    for _, t in ipairs(threads) do
        for code, n in pairs(t:get("statuses")) do all[code] = (all[code] or 0) + n end
    end
    local parts = {}
    for code, n in pairs(all) do table.insert(parts, code .. "=" .. n) end
    local e = summary.errors
    io.write(string.format("RESULT requests=%d p50_ms=%.3f p99_ms=%.3f max_ms=%.3f sockerr=%d statuses=%s\n",
        summary.requests, latency:percentile(50) / 1000, latency:percentile(99) / 1000,
        latency.max / 1000, e.connect + e.read + e.write + e.timeout, table.concat(parts, ",")))
end
"""


def run_wrk(args, lua, seconds):
    pause = max(0, int(args.conns * 1000 / args.rate))
    cmd = ["nice", "-n", str(args.nice), "wrk", "-t2", f"-c{args.conns}", f"-d{seconds}s",
           "--timeout", "10s", "-s", lua, f"http://127.0.0.1:{args.port}", "--",
           f"/auth?service={SERVICE}&scope=repository:bench/app:pull,push",
           args.creds, str(pause)]
    out = subprocess.run(cmd, capture_output=True, text=True).stdout
    m = re.search(r"RESULT requests=(\d+) p50_ms=([\d.]+) p99_ms=([\d.]+) max_ms=([\d.]+) "
                  r"sockerr=(\d+) statuses=(\S*)", out)
    if not m:
        return {"requests": 0, "p50_ms": "", "p99_ms": "", "max_ms": "", "sockerr": -1,
                "statuses": {}}
    statuses = {}
    for part in filter(None, m.group(6).split(",")):
        code, n = part.split("=")
        statuses[int(code)] = int(n)
    return {"requests": int(m.group(1)), "p50_ms": float(m.group(2)),
            "p99_ms": float(m.group(3)), "max_ms": float(m.group(4)),
            "sockerr": int(m.group(5)), "statuses": statuses}


def fmt_statuses(counter, kind):
    parts = [f"{s}:{n}" for (k, s), n in sorted(counter.items()) if k == kind and n]
    return " ".join(parts)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--bin", required=True)
    p.add_argument("--config", required=True)
    p.add_argument("--data-dir", required=True)
    p.add_argument("--creds", required=True)
    p.add_argument("--admin-token", required=True)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--duration", type=int, default=3600)
    p.add_argument("--interval", type=int, default=30)
    p.add_argument("--rate", type=float, default=400, help="token requests per second (about)")
    p.add_argument("--conns", type=int, default=4)
    p.add_argument("--admin-rate", type=float, default=4)
    p.add_argument("--login-rate", type=float, default=2)
    p.add_argument("--bad-rate", type=float, default=10)
    p.add_argument("--nice", type=int, default=5)
    p.add_argument("--out", required=True)
    p.add_argument("--work", required=True)
    p.add_argument("--command", default="")
    p.add_argument("--loads", default="token,logins,admin,bad",
                   help="which loads to run, comma-separated (to find what a growth comes from)")
    args = p.parse_args()
    os.makedirs(args.out, exist_ok=True)

    creds = []
    with open(args.creds) as f:
        for line in f:
            user, _, pw = base64.b64decode(line.split()[1]).decode().partition(":")
            creds.append((user, pw))

    server = subprocess.Popen(
        ["nice", "-n", str(args.nice), args.bin, "serve", "--config", args.config],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    log = LogTally(server.stderr, os.path.join(args.work, "server-not-info.log"))
    log.start()
    for _ in range(300):
        try:
            if Client(args.port).request("GET", "/health")[0] == 200:
                break
        except OSError:
            pass
        time.sleep(0.1)
    else:
        server.kill()
        sys.exit("soak: the server did not become healthy:\n" + b"".join(log.tail).decode(errors="replace"))

    lua = os.path.join(args.work, "soak.lua")
    with open(lua, "w") as f:
        f.write(WRK_LUA)

    counters = Counters()
    stop = threading.Event()
    loads = set(args.loads.split(","))
    unknown = loads - {"token", "logins", "admin", "bad"}
    if unknown:
        server.kill()
        sys.exit(f"soak: unknown loads {sorted(unknown)}")
    workers = []
    if "admin" in loads:
        workers.append(threading.Thread(target=admin_churn, daemon=True, args=(
            stop, args.port, args.admin_token, args.admin_rate, counters)))
    if "logins" in loads:
        workers.append(threading.Thread(target=refresh_logins, daemon=True, args=(
            stop, args.port, creds, args.login_rate, counters)))
    if "bad" in loads:
        workers.append(threading.Thread(target=failing_logins, daemon=True, args=(
            stop, args.port, creds, args.bad_rate, counters)))
    for w in workers:
        w.start()

    admin = Client(args.port)
    columns = ["elapsed_s", "rss_mb", "hwm_mb", "fds", "threads", "server_cpu_pct", "load1",
               "token_requests", "token_rps", "token_p50_ms", "token_p99_ms", "token_max_ms",
               "token_non200", "token_sockerr", "logins", "refreshes", "bad_logins",
               "admin_ops", "admin_errors", "tokens_stored", "expiring_left", "swept_logged", "log_kb",
               "log_warn_error",
               "store_kb", "statuses"]
    csv_path = os.path.join(args.out, "soak.csv")
    rows = []
    start = time.monotonic()
    prev_proc = proc_sample(server.pid)
    prev_t = start
    prev_c, prev_log = counters.snapshot(), log.snapshot()
    with open(csv_path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(columns)
        f.flush()
        print(",".join(columns), flush=True)
        while time.monotonic() - start < args.duration - 1:
            left = args.duration - (time.monotonic() - start)
            seconds = max(1, int(min(args.interval, left)))
            if "token" in loads:
                wrk = run_wrk(args, lua, seconds)
            else:
                time.sleep(seconds)
                wrk = {"requests": 0, "p50_ms": "", "p99_ms": "", "max_ms": "", "sockerr": 0,
                       "statuses": {}}
            now = time.monotonic()
            if server.poll() is not None:
                print(f"soak: the server exited with {server.returncode}", file=sys.stderr)
                break
            proc = proc_sample(server.pid)
            cur_c, cur_log = counters.snapshot(), log.snapshot()
            dc, dl = cur_c - prev_c, cur_log - prev_log
            s, data = admin.request("GET", "/api/v1/registries/default/tokens?limit=1", None,
                                    {"Authorization": f"Bearer {args.admin_token}"})
            stored = json.loads(data)["total"] if s == 200 else ""
            s, data = admin.request("GET", "/api/v1/registries/default/tokens?limit=1&filter.name=expiring-",
                                    None, {"Authorization": f"Bearer {args.admin_token}"})
            expiring_left = json.loads(data)["total"] if s == 200 else ""
            kinds = lambda prefix: sum(n for (k, _), n in dc.items() if k.startswith(prefix))
            admin_errors = sum(n for (k, st), n in dc.items()
                               if k.startswith("admin_") and not 200 <= st < 300)
            non200 = sum(n for code, n in wrk["statuses"].items() if code != 200)
            statuses = "; ".join(filter(None, [
                "token " + " ".join(f"{c}:{n}" for c, n in sorted(wrk["statuses"].items())),
                "login " + fmt_statuses(dc, "login"),
                "refresh " + fmt_statuses(dc, "refresh"),
                "bad " + fmt_statuses(dc, "bad_login"),
                "admin " + " ".join(f"{k[6:]}:{st}:{n}" for (k, st), n in sorted(dc.items())
                                    if k.startswith("admin_") and not 200 <= st < 300),
            ]))
            row = {
                "elapsed_s": round(now - start),
                "rss_mb": round(proc["rss_kb"] / 1024, 1),
                "hwm_mb": round(proc["hwm_kb"] / 1024, 1),
                "fds": proc["fds"],
                "threads": proc["threads"],
                "server_cpu_pct": round(100 * (proc["cpu_s"] - prev_proc["cpu_s"]) / (now - prev_t)),
                "load1": os.getloadavg()[0],
                "token_requests": wrk["requests"],
                "token_rps": round(wrk["requests"] / (now - prev_t)),
                "token_p50_ms": wrk["p50_ms"],
                "token_p99_ms": wrk["p99_ms"],
                "token_max_ms": wrk["max_ms"],
                "token_non200": non200,
                "token_sockerr": wrk["sockerr"],
                "logins": kinds("login"),
                "refreshes": kinds("refresh"),
                "bad_logins": kinds("bad_login"),
                "admin_ops": kinds("admin_"),
                "admin_errors": admin_errors,
                "tokens_stored": stored,
                "expiring_left": expiring_left,
                "swept_logged": dl["swept"],
                "log_kb": round(dl["log_bytes"] / 1024),
                "log_warn_error": dl["log_warn"] + dl["log_error"],
                "store_kb": dir_kb(args.data_dir),
                "statuses": statuses,
            }
            rows.append(row)
            w.writerow([row[c] for c in columns])
            f.flush()
            print(",".join(str(row[c]) for c in columns), flush=True)
            prev_proc, prev_t, prev_c, prev_log = proc, now, cur_c, cur_log

    stop.set()
    for t in workers:
        t.join(timeout=40)
    t0 = time.monotonic()
    server.send_signal(signal.SIGTERM)
    try:
        code = server.wait(timeout=60)
    except subprocess.TimeoutExpired:
        server.kill()
        code = "killed after 60 s"
    shutdown_s = time.monotonic() - t0
    log.join(timeout=5)
    totals = counters.snapshot()
    write_report(args, rows, columns, totals, log.snapshot(), code, shutdown_s)


def slope_per_hour(rows, key):
    """Least-squares slope of key over elapsed time, per hour."""
    pts = [(r["elapsed_s"], r[key]) for r in rows if r[key] != ""]
    if len(pts) < 2:
        return 0.0
    n = len(pts)
    mx = sum(x for x, _ in pts) / n
    my = sum(y for _, y in pts) / n
    sxx = sum((x - mx) ** 2 for x, _ in pts)
    sxy = sum((x - mx) * (y - my) for x, y in pts)
    return sxy / sxx * 3600 if sxx else 0.0


def write_report(args, rows, columns, totals, logs, code, shutdown_s):
    md = os.path.join(args.out, "soak.md")
    short = ["elapsed_s", "rss_mb", "fds", "threads", "server_cpu_pct", "load1", "token_rps",
             "token_p50_ms", "token_p99_ms", "token_non200", "logins", "refreshes", "bad_logins",
             "admin_ops", "admin_errors", "tokens_stored", "expiring_left", "swept_logged",
             "store_kb"]
    by_kind = collections.defaultdict(collections.Counter)
    for (k, s), n in totals.items():
        by_kind[k][s] += n
    with open(md, "w") as f:
        f.write("# Soak run\n\n")
        f.write(f"Command: `{args.command}` (loads: {args.loads}). Started {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime(time.time() - (rows[-1]['elapsed_s'] if rows else 0)))}, "
                f"{len(rows)} intervals of about {args.interval} s on {os.cpu_count()} CPUs.\n\n")
        if rows:
            half = rows[len(rows) // 2:]
            f.write("## Summary\n\n")
            f.write("| | first | last | min | max | slope per hour (all) | slope per hour (second half) |\n|---|---:|---:|---:|---:|---:|---:|\n")
            for key, unit in [("rss_mb", "MB"), ("fds", ""), ("threads", ""),
                              ("token_p99_ms", "ms"), ("tokens_stored", ""), ("expiring_left", ""),
                              ("store_kb", "KB")]:
                vals = [r[key] for r in rows if r[key] != ""]
                if not vals:
                    continue
                f.write(f"| {key} | {vals[0]} | {vals[-1]} | {min(vals)} | {max(vals)} | "
                        f"{slope_per_hour(rows, key):+.2f} {unit} | {slope_per_hour(half, key):+.2f} {unit} |\n")
            f.write("\n")
            f.write(f"Token requests (wrk, GET /auth): {sum(r['token_requests'] for r in rows)} in total, "
                    f"{sum(r['token_non200'] for r in rows)} not 200, {sum(max(0, r['token_sockerr']) for r in rows)} socket errors.\n\n")
            f.write("Other requests by status over the whole run:\n\n")
            for k in sorted(by_kind):
                f.write(f"- {k}: " + ", ".join(f"{s if s else 'socket error'} × {n}" for s, n in sorted(by_kind[k].items())) + "\n")
            f.write(f"\nServer log: {logs['log_lines']} lines, {logs['log_bytes'] // 1024} KB "
                    f"({logs['log_warn']} WARN, {logs['log_error']} ERROR); "
                    f"{logs['swept']} \"expired token deleted\" lines (the 30 s sweep logs its deletions; "
                    f"the sweep that a token list runs first does not, so `expiring_left` counts both).\n\n")
            f.write(f"Shutdown (SIGTERM) took {shutdown_s:.1f} s; exit status {code}.\n\n")
        f.write("## Every interval\n\n")
        f.write("| " + " | ".join(short) + " |\n|" + "---:|" * len(short) + "\n")
        for r in rows:
            f.write("| " + " | ".join(str(r[c]) for c in short) + " |\n")
    write_svg(os.path.join(args.out, "soak.svg"), rows)
    print(open(md).read())


def write_svg(path, rows):
    """Four small line charts (RSS, fds, threads, p99) over elapsed time; no dependencies."""
    panels = [("rss_mb", "RSS (MB)"), ("fds", "open fds"), ("threads", "threads"),
              ("token_p99_ms", "token p99 (ms)")]
    W, H, pad = 640, 150, 40
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H * len(panels)}" '
           f'font-family="sans-serif" font-size="11">']
    xmax = max((r["elapsed_s"] for r in rows), default=1) or 1
    for i, (key, title) in enumerate(panels):
        top = i * H
        vals = [(r["elapsed_s"], r[key]) for r in rows if r[key] != ""]
        ymax = max((v for _, v in vals), default=1) * 1.1 or 1
        x = lambda t: pad + (W - 2 * pad) * t / xmax
        y = lambda v: top + H - 25 - (H - 45) * v / ymax
        out.append(f'<text x="{pad}" y="{top + 14}">{title}, 0 to {ymax:.4g}; x: elapsed s, 0 to {xmax}</text>')
        out.append(f'<line x1="{pad}" y1="{top + H - 25}" x2="{W - pad}" y2="{top + H - 25}" stroke="#888"/>')
        out.append(f'<line x1="{pad}" y1="{top + 20}" x2="{pad}" y2="{top + H - 25}" stroke="#888"/>')
        pts = " ".join(f"{x(t):.1f},{y(v):.1f}" for t, v in vals)
        out.append(f'<polyline fill="none" stroke="#1f5fa8" stroke-width="1.5" points="{pts}"/>')
    out.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(out) + "\n")


if __name__ == "__main__":
    main()
