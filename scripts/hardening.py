#!/usr/bin/env python3
"""Attacks, a connect storm and a soak run against `strata serve`, with its resident memory
sampled throughout: the measurements behind docs/benchmarks.md's hardening section.

    scripts/hardening.py attacks  [--scale 1.0]         # each attack on a fresh server
    scripts/hardening.py connects [--clients 2000] [--rounds 5]   # strata vs redis-server
    scripts/hardening.py idle     [--clients 10000]     # resident memory per idle client
    scripts/hardening.py soak     [--minutes 30]        # mixed and misbehaving load

Build first (`cargo build --release --bin strata`); `redis-server` must be on the PATH for
`connects`. Only the Python standard library is used. Each run prints a markdown table.

The budget is `max_bytes` of the configuration the script writes (256 MiB unless --budget);
the client allowance is `[server] max_client_memory` (the script sets it with
--client-memory, default 64 MiB). A run passes when the peak resident memory stays within
budget + client allowance + the process's baseline (what an empty server holds, measured at
start) + a slack constant (--slack, default 32 MiB for allocator pages and runtime).
"""

import argparse
import os
import random
import selectors
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MIB = 1 << 20


# --------------------------------------------------------------------------------------------
# Processes and memory


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_bytes(pid):
    """Resident memory of `pid`, from /proc (0 once it is gone)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except FileNotFoundError:
        pass
    return 0


class Sampler(threading.Thread):
    """Samples a process's resident memory every `every` seconds."""

    def __init__(self, pid, every=0.1):
        super().__init__(daemon=True)
        self.pid, self.every = pid, every
        self.samples = []  # (seconds since start, bytes)
        self.stop = threading.Event()
        self.start_time = time.monotonic()

    def run(self):
        while not self.stop.is_set():
            self.samples.append((time.monotonic() - self.start_time, rss_bytes(self.pid)))
            time.sleep(self.every)

    def peak(self, since=0.0):
        return max((b for t, b in self.samples if t >= since), default=0)

    def now(self):
        return rss_bytes(self.pid)


def wait_port(port, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on port {port}")


class Strata:
    """A `strata serve` on free ports with the given configuration."""

    binary = os.path.join(ROOT, "target", "release", "strata")

    def __init__(self, budget, client_memory, extra=""):
        binary = Strata.binary
        if not os.path.exists(binary):
            sys.exit(f"no {binary}: build first (cargo build --release --bin strata)")
        self.dir = tempfile.mkdtemp(prefix="strata-hardening-")
        self.port, self.http = free_port(), free_port()
        config = os.path.join(self.dir, "strata.toml")
        with open(config, "w") as f:
            bound = f"max_client_memory = {client_memory}\n" if client_memory else ""
            f.write(f"max_bytes = {budget}\n[server]\n{bound}{extra}")
        env = {k: v for k, v in os.environ.items() if not k.startswith("STRATA_")}
        env["RUST_LOG"] = env.get("RUST_LOG", "warn")
        self.log = open(os.path.join(self.dir, "strata.log"), "w")
        self.proc = subprocess.Popen(
            [binary, "serve", "--config", config, "--resp-addr", f"127.0.0.1:{self.port}",
             "--http-addr", f"127.0.0.1:{self.http}"],
            stdout=self.log, stderr=self.log, env=env)
        wait_port(self.port)
        wait_port(self.http)
        time.sleep(0.5)
        self.baseline = rss_bytes(self.proc.pid)

    def close(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


class Redis:
    def __init__(self):
        if not shutil.which("redis-server"):
            sys.exit("redis-server is not on the PATH")
        self.port = free_port()
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--maxclients", "10000"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(self.port)

    def close(self):
        self.proc.terminate()
        self.proc.wait(timeout=10)


# --------------------------------------------------------------------------------------------
# RESP


def command(*args):
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        if isinstance(a, str):
            a = a.encode()
        elif isinstance(a, int):
            a = str(a).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)


class Client:
    """A blocking RESP client that reads whole replies."""

    def __init__(self, port, timeout=30):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buf = b""

    def send(self, data):
        self.sock.sendall(data)

    def _line(self):
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(1 << 16)
            if not chunk:
                raise ConnectionError("closed")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _exact(self, n):
        while len(self.buf) < n:
            chunk = self.sock.recv(max(1 << 16, n - len(self.buf)))
            if not chunk:
                raise ConnectionError("closed")
            self.buf += chunk
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def reply(self):
        line = self._line()
        kind, rest = line[:1], line[1:]
        if kind in (b"+", b"-", b":"):
            return line
        if kind == b"$":
            n = int(rest)
            return None if n < 0 else self._exact(n + 2)[:-2]
        if kind == b"*":
            n = int(rest)
            return None if n < 0 else [self.reply() for _ in range(n)]
        raise ValueError(f"unexpected reply {line[:40]!r}")

    def call(self, *args):
        self.send(command(*args))
        return self.reply()

    def close(self, reset=False):
        if reset:
            # An abrupt close (RST), as a crashed client leaves.
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        self.sock.close()


# --------------------------------------------------------------------------------------------
# attacks


def attackers(port, clients, send, small_window=False):
    """Opens `clients` connections that each run `send(client)` and then hold on. A client the
    server closes meanwhile (for the bound, say) is left out: that is what should happen."""
    held = []
    for _ in range(clients):
        try:
            c = Client(port)
            if small_window:
                # A client that does not read: let the server's replies back up quickly.
                c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            send(c)
            held.append(c)
        except OSError:
            pass
    return held


def unfinished_sets(port, scale):
    """Clients each sending all but the last byte of a SET of a 60 MiB value, then holding."""
    size = int(60 * MIB * scale)
    chunk = b"x" * (1 << 20)

    def send(c):
        c.send(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$%d\r\n" % size)
        left = size - 1
        while left > 0:
            n = min(left, len(chunk))
            c.send(chunk[:n])
            left -= n

    return attackers(port, max(1, int(12 * scale)), send)


def unfinished_mgets(port, scale):
    """Clients each sending all but the last argument of an MGET of 1M one-byte keys."""
    args = int((1 << 20) * scale)
    request = b"*%d\r\n$4\r\nMGET\r\n" % args + b"$1\r\nk\r\n" * (args - 2)
    return attackers(port, max(1, int(4 * scale)), lambda c: c.send(request))


def unread_mgets(port, scale):
    """Clients each asking MGET of an 8 MB value 100 times, and not reading."""
    setup = Client(port)
    stored = setup.call("SET", "big", b"v" * int(8_000_000 * scale))
    setup.close()
    if stored != b"+OK":
        raise RuntimeError(f"the 8 MB value was refused: {stored!r} (raise --budget)")
    request = command("MGET", *(["big"] * 100))
    return attackers(port, max(1, int(6 * scale)), lambda c: c.send(request), small_window=True)


def cross_protocol(port, _scale):
    """The curl payload: an HTTP POST whose body is FLUSHALL. Returns whether keys survived."""
    c = Client(port)
    c.call("SET", "canary", "1")
    c.close()
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 10\r\n\r\nFLUSHALL\r\n")
        time.sleep(0.5)
    c = Client(port)
    survived = c.call("EXISTS", "canary") == b":1"
    c.close()
    return survived


def run_attacks(args):
    rows = []
    for name, attack in [("12 unfinished SETs of 60 MiB", unfinished_sets),
                         ("4 unfinished MGETs of 1M arguments", unfinished_mgets),
                         ("6 unread MGET big x100 (8 MB)", unread_mgets)]:
        server = Strata(args.budget, args.client_memory)
        sampler = Sampler(server.proc.pid)
        sampler.start()
        try:
            held = attack(server.port, args.scale)
            time.sleep(args.hold)
            alive = Client(server.port).call("PING") == b"+PONG"
            for c in held:
                try:
                    c.close()
                except OSError:
                    pass
            time.sleep(args.settle)
            after = sampler.now()
            sampler.stop.set()
            peak = sampler.peak()
            allowance = args.budget + args.client_memory + server.baseline + args.slack * MIB
            rows.append((name, len(held), server.baseline, peak, allowance, after, alive))
        finally:
            sampler.stop.set()
            server.close()
    server = Strata(args.budget, args.client_memory)
    try:
        survived = cross_protocol(server.port, args.scale)
    finally:
        server.close()
    print(f"budget {args.budget / MIB:.0f} MiB, client allowance {args.client_memory / MIB:.0f} MiB, "
          f"slack {args.slack} MiB, scale {args.scale}\n")
    print("| attack | attacking clients | baseline RSS | peak RSS | allowed | within | RSS after they left | server answered |")
    print("|---|---:|---:|---:|---:|---|---:|---|")
    ok = True
    for name, held, base, peak, allowance, after, alive in rows:
        within = peak <= allowance
        ok &= within and alive
        print(f"| {name} | {held} | {base / MIB:.1f} MiB | {peak / MIB:.1f} MiB | "
              f"{allowance / MIB:.1f} MiB | {'yes' if within else '**no**'} | {after / MIB:.1f} MiB | "
              f"{'yes' if alive else '**no**'} |")
    print(f"\ncross-protocol POST with a FLUSHALL body: keys {'kept' if survived else '**flushed**'}")
    return 0 if ok and survived else 1


# --------------------------------------------------------------------------------------------
# connect storm


def connect_storm(port, clients):
    """Seconds until `clients` connections opened at once have each had a PING answered."""
    sel = selectors.DefaultSelector()
    start = time.monotonic()
    pending = {}
    for _ in range(clients):
        s = socket.socket()
        s.setblocking(False)
        s.connect_ex(("127.0.0.1", port))
        sel.register(s, selectors.EVENT_WRITE)
        pending[s] = b""
    done = 0
    deadline = start + 120
    while done < clients and time.monotonic() < deadline:
        for key, events in sel.select(timeout=1):
            s = key.fileobj
            if events & selectors.EVENT_WRITE:
                try:
                    s.send(b"PING\r\n")
                except OSError:
                    continue
                sel.modify(s, selectors.EVENT_READ)
            elif events & selectors.EVENT_READ:
                try:
                    data = s.recv(64)
                except OSError:
                    data = b""
                pending[s] += data
                if pending[s].startswith(b"+PONG\r\n") or not data:
                    sel.unregister(s)
                    done += 1
    elapsed = time.monotonic() - start
    for s in pending:
        s.close()
    sel.close()
    return elapsed, done


def run_connects(args):
    strata, redis = Strata(args.budget, args.client_memory), Redis()
    times = {"strata": [], "redis": []}
    try:
        for _ in range(args.rounds):
            for name, port in [("strata", strata.port), ("redis", redis.port)]:
                elapsed, done = connect_storm(port, args.clients)
                if done < args.clients:
                    print(f"{name}: only {done} of {args.clients} answered", file=sys.stderr)
                times[name].append(elapsed)
                time.sleep(1)
    finally:
        strata.close()
        redis.close()
    print(f"{args.clients} concurrent connects, each answered PING; {args.rounds} rounds, alternating\n")
    print("| server | min | median | max |")
    print("|---|---:|---:|---:|")
    for name, ts in times.items():
        ts = sorted(ts)
        print(f"| {name} | {ts[0]:.3f} s | {ts[len(ts) // 2]:.3f} s | {ts[-1]:.3f} s |")
    ratio = sorted(times["strata"])[args.rounds // 2] / sorted(times["redis"])[args.rounds // 2]
    print(f"\nstrata / redis (medians): {ratio:.2f}x")
    return 0 if ratio <= 2 else 1


# --------------------------------------------------------------------------------------------
# idle clients


def run_idle(args):
    """Resident memory per idle client: N clients that each ran one PING, then wait."""
    server = Strata(args.budget, args.client_memory)
    clients = []
    try:
        before = rss_bytes(server.proc.pid)
        for _ in range(args.clients):
            c = Client(server.port)
            c.call("PING")
            clients.append(c)
        time.sleep(args.settle)
        during = rss_bytes(server.proc.pid)
    finally:
        for c in clients:
            c.close()
        server.close()
    per = (during - before) / args.clients
    print(f"| idle clients | RSS before | RSS with them | per client |")
    print("|---:|---:|---:|---:|")
    print(f"| {args.clients} | {before / MIB:.1f} MiB | {during / MIB:.1f} MiB | {per / 1024:.1f} KiB |")
    return 0


# --------------------------------------------------------------------------------------------
# soak


class Load(threading.Thread):
    def __init__(self, port, stop, work, errors):
        super().__init__(daemon=True)
        self.port, self.stop, self.work, self.errors = port, stop, work, errors
        self.rng = random.Random()

    def run(self):
        while not self.stop.is_set():
            try:
                self.work(self)
            except (OSError, ConnectionError, ValueError) as e:
                self.errors[type(e).__name__] = self.errors.get(type(e).__name__, 0) + 1
                time.sleep(0.05)


def normal(load):
    """Pipelined reads and writes over 100k keys, values from 10 B to 64 KiB."""
    c = Client(load.port)
    try:
        for _ in range(200):
            batch = []
            for _ in range(20):
                key = f"k:{load.rng.randrange(100_000)}"
                op = load.rng.random()
                if op < 0.5:
                    batch.append(command("GET", key))
                elif op < 0.8:
                    batch.append(command("SET", key, b"v" * load.rng.choice([10, 100, 1000, 65536]), "EX", 60))
                elif op < 0.9:
                    batch.append(command("MGET", *(f"k:{load.rng.randrange(100_000)}" for _ in range(10))))
                elif op < 0.95:
                    batch.append(command("INCR", f"n:{load.rng.randrange(1000)}"))
                else:
                    batch.append(command("DEL", key))
            c.send(b"".join(batch))
            for _ in batch:
                r = c.reply()
                if isinstance(r, bytes) and r.startswith(b"-") and not r.startswith(b"-WRONGTYPE") \
                        and not r.startswith(b"-ERR value is not an integer"):
                    raise ValueError(r.decode(errors="replace"))
            if load.stop.is_set():
                break
    finally:
        c.close()


def churn(load):
    """Connect, run a few commands, drop the connection abruptly."""
    c = Client(load.port)
    for _ in range(load.rng.randrange(1, 10)):
        c.call("SET", f"c:{load.rng.randrange(1000)}", "x")
    c.close(reset=load.rng.random() < 0.5)


def misbehave(load):
    """One of the misbehaviours, then let go."""
    kind = load.rng.randrange(6)
    c = Client(load.port, timeout=5)
    try:
        if kind == 0:  # an unfinished big SET, held a while
            c.send(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$%d\r\n" % (32 * MIB) + b"x" * (16 * MIB))
            time.sleep(2)
        elif kind == 1:  # a big reply not read
            c.send(command("MGET", *(["big"] * 50)))
            time.sleep(2)
        elif kind == 2:  # a malformed frame
            c.send(b"*2\r\n$3\r\nGET\r\n$x\r\n")
            c.reply()
        elif kind == 3:  # the cross-protocol request
            c.send(b"POST / HTTP/1.1\r\nHost: x\r\n\r\nFLUSHALL\r\n")
            time.sleep(0.1)
        elif kind == 4:  # an array header past the limit
            c.send(b"*99999999\r\n")
            c.reply()
        else:  # bytes trickled slowly
            for b in b"*1\r\n$4\r\nPING\r\n":
                c.send(bytes([b]))
                time.sleep(0.05)
            c.reply()
    except (OSError, ConnectionError):
        pass
    finally:
        c.close(reset=True)


def run_soak(args):
    server = Strata(args.budget, args.client_memory)
    setup = Client(server.port)
    setup.call("SET", "big", b"v" * 1_000_000)
    setup.close()
    sampler = Sampler(server.proc.pid, every=1.0)
    sampler.start()
    stop, errors = threading.Event(), {}
    threads = ([Load(server.port, stop, normal, errors) for _ in range(8)]
               + [Load(server.port, stop, churn, errors) for _ in range(2)]
               + [Load(server.port, stop, misbehave, errors) for _ in range(2)])
    for t in threads:
        t.start()
    try:
        time.sleep(args.minutes * 60)
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=30)
        time.sleep(args.settle)
        after = sampler.now()
        sampler.stop.set()
        alive = server.proc.poll() is None
        server.close()
    samples = sampler.samples
    peak = max(b for _, b in samples)
    allowance = args.budget + args.client_memory + server.baseline + args.slack * MIB
    # Growth: a least-squares slope over the run's last two thirds (the first third fills).
    tail = [(t, b) for t, b in samples if t >= samples[-1][0] / 3]
    n = len(tail)
    mt = sum(t for t, _ in tail) / n
    mb = sum(b for _, b in tail) / n
    slope = sum((t - mt) * (b - mb) for t, b in tail) / max(1e-9, sum((t - mt) ** 2 for t, _ in tail))
    print(f"soak: {args.minutes} min, 8 normal + 2 churning + 2 misbehaving clients; "
          f"budget {args.budget / MIB:.0f} MiB, client allowance {args.client_memory / MIB:.0f} MiB\n")
    print("| baseline RSS | peak RSS | allowed | within | growth over the last two thirds | RSS after | server alive | client-side errors |")
    print("|---:|---:|---:|---|---:|---:|---|---|")
    print(f"| {server.baseline / MIB:.1f} MiB | {peak / MIB:.1f} MiB | {allowance / MIB:.1f} MiB | "
          f"{'yes' if peak <= allowance else '**no**'} | {slope * 60 / MIB:+.2f} MiB/min | "
          f"{after / MIB:.1f} MiB | {'yes' if alive else '**no**'} | {errors or 'none'} |")
    # The resident size through the run, a tenth at a time (the last sample of each tenth).
    end = samples[-1][0]
    marks = []
    for tenth in range(1, 11):
        upto = [b for t, b in samples if t <= end * tenth / 10]
        marks.append(f"{upto[-1] / MIB:.0f}" if upto else "-")
    print(f"\nRSS (MiB) at each tenth of the run: {' '.join(marks)}")
    if args.samples:
        with open(args.samples, "w") as f:
            f.write("seconds,rss_bytes\n")
            f.writelines(f"{t:.1f},{b}\n" for t, b in samples)
    return 0 if peak <= allowance and alive else 1


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--budget", type=int, default=256 * MIB, help="max_bytes (bytes)")
    p.add_argument("--client-memory", type=int, default=64 * MIB,
                   help="[server] max_client_memory (bytes; 0 leaves it out, for builds without it)")
    p.add_argument("--binary", default=Strata.binary, help="the strata binary to run")
    p.add_argument("--slack", type=int, default=32, help="MiB allowed beyond budget + clients + baseline")
    p.add_argument("--settle", type=float, default=3.0, help="seconds to wait before RSS 'after'")
    sub = p.add_subparsers(dest="what", required=True)
    a = sub.add_parser("attacks")
    a.add_argument("--scale", type=float, default=1.0, help="sizes and client counts times this")
    a.add_argument("--hold", type=float, default=3.0, help="seconds the attackers hold on")
    c = sub.add_parser("connects")
    c.add_argument("--clients", type=int, default=2000)
    c.add_argument("--rounds", type=int, default=5)
    i = sub.add_parser("idle")
    i.add_argument("--clients", type=int, default=10000)
    s = sub.add_parser("soak")
    s.add_argument("--minutes", type=float, default=30.0)
    s.add_argument("--samples", help="write every (seconds, RSS) sample to this CSV file")
    args = p.parse_args()
    Strata.binary = args.binary
    runs = {"attacks": run_attacks, "connects": run_connects, "idle": run_idle, "soak": run_soak}
    sys.exit(runs[args.what](args))


if __name__ == "__main__":
    main()
