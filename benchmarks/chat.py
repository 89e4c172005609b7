"""Chat server throughput and delivery latency: N clients x M messages in one room, loopback only.

python benchmarks/chat.py [--clients 8] [--messages 500] [--rates 0,50] [--size 64] [--timeout 120]

The server runs as its own process (`python -m projects.chat.server`, port 0, a temporary
history file, no rate limit: the benchmark is the flood the limit exists to stop; its output
goes to a file, never to a pipe nobody reads); the clients are threads of this process. Every
client says M numbered messages and receives everyone's (N x N x M deliveries). Each text
carries its send time, so a receiver gets the delivery latency (send -> server -> SQLite ->
fan-out -> receiver). Rate 0 sends as fast as possible (throughput; latency is then mostly
queueing); rate R paces each client at R messages/s (latency at that load). `--rates` runs
each, with a fresh server. Every run checks that nothing was lost or reordered, and reports
the server process's CPU time: the clients share this process's GIL, so on a small machine
the client side can be the bottleneck.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

from benchmarks._util import report  # noqa: E402
from projects.chat.client import ChatClient  # noqa: E402

HOST = "127.0.0.1"
MAX_DELIVERIES = 5_000_000  # the bound on N x N x M, whatever the arguments


def start_server(db: Path, timeout: float) -> tuple[subprocess.Popen, int]:
    """The real server process on a free loopback port; returns it and the port.

    Its output goes to a file next to the history: a pipe that this process stopped reading
    after the first line once filled up and blocked the server's writes (and so the server)."""
    log = db.with_suffix(".log")
    settings = [
        f"host={HOST}",
        "port=0",
        f"db_path={db}",
        f"secrets_dir={db.parent}",
        "rate_per_s=0",
    ]
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "projects.chat.server", *settings],
            cwd=Path(__file__).resolve().parent.parent,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = log.read_text()
        if "listening on" in text:
            host, port = text.split("listening on ")[1].split()[0].rsplit(":", 1)
            assert host == HOST, f"server bound {host}, not loopback"
            return proc, int(port)
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    proc.kill()
    raise RuntimeError(f"the chat server did not start: {log.read_text()[-500:]}")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc; NaN elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run(clients: int, messages: int, rate: float, size: int, port: int, timeout: float) -> dict:
    room = f"bench{time.monotonic_ns()}"
    conns = [ChatClient(HOST, port, f"b{i}", p2p=False) for i in range(clients)]
    try:
        for c in conns:
            c.join(room)
            c.wait_for("joined", room=room)
        for c in conns:  # all members present before anyone speaks
            while True:
                c.who(room)
                if len(c.wait_for("user_list", room=room)["users"]) == clients:
                    break
        pad = "x" * max(0, size - 24)
        latencies = [np.empty(clients * messages) for _ in conns]
        in_order = [True] * clients
        done = threading.Barrier(clients * 2 + 1)
        start = threading.Barrier(clients * 2 + 1)
        last_rx = [0.0] * clients

        def send(i: int, c: ChatClient) -> None:
            start.wait()
            t0 = time.perf_counter()
            for seq in range(messages):
                if rate > 0:
                    delay = t0 + seq / rate - time.perf_counter()
                    if delay > 0:
                        time.sleep(delay)
                c.say(room, f"{i}:{seq}:{time.perf_counter_ns()}:{pad}")
            done.wait()

        def receive(i: int, c: ChatClient) -> None:
            start.wait()
            next_seq = [0] * clients
            got, end = 0, time.monotonic() + timeout
            while got < clients * messages and time.monotonic() < end:
                msg = c.recv(timeout=1.0)
                if msg is None or msg["type"] != "message" or msg["room"] != room:
                    continue
                now = time.perf_counter_ns()
                sender, seq, sent, _ = msg["text"].split(":", 3)
                s, q = int(sender), int(seq)
                in_order[i] &= q == next_seq[s]
                next_seq[s] = q + 1
                latencies[i][got] = (now - int(sent)) / 1e6
                got += 1
            latencies[i] = latencies[i][:got]
            last_rx[i] = time.perf_counter()
            done.wait()

        threads = [
            threading.Thread(target=f, args=(i, c), daemon=True)
            for i, c in enumerate(conns)
            for f in (send, receive)
        ]
        for t in threads:
            t.start()
        start.wait()
        t_start = time.perf_counter()
        with contextlib.suppress(threading.BrokenBarrierError):  # report what arrived
            done.wait(timeout=timeout + 30)
        elapsed = max(max(last_rx) - t_start, 1e-9)
        lat = np.concatenate(latencies)
        expected = clients * clients * messages
        return {
            "delivered": len(lat),
            "expected": expected,
            "in_order": all(in_order),
            "elapsed": elapsed,
            "sent_per_s": clients * messages / elapsed,
            "delivered_per_s": len(lat) / elapsed,
            "p50": float(np.percentile(lat, 50)) if len(lat) else float("nan"),
            "p99": float(np.percentile(lat, 99)) if len(lat) else float("nan"),
        }
    finally:
        for c in conns:
            c.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--messages", type=int, default=500, help="per client")
    parser.add_argument("--rates", default="0,50", help="msgs/s per client, 0 = flat out")
    parser.add_argument("--size", type=int, default=64, help="text bytes per message")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds, at most")
    args = parser.parse_args()
    if args.clients * args.clients * args.messages > MAX_DELIVERIES:
        parser.error(f"clients^2 x messages is over the {MAX_DELIVERIES:,} bound")
    ok = True
    for rate in (float(x) for x in args.rates.split(",")):
        ok &= phase(args, rate)
    if not ok:
        raise SystemExit("lost or reordered messages")


def phase(args: argparse.Namespace, rate: float) -> bool:
    """One measurement with a fresh server; prints it and returns whether all arrived in order."""
    with tempfile.TemporaryDirectory() as tmp:
        proc, port = start_server(Path(tmp) / "history.sqlite3", timeout=60)
        try:
            cpu0 = cpu_seconds(proc.pid)
            r = run(args.clients, args.messages, rate, args.size, port, args.timeout)
            r["server_cpu"] = cpu_seconds(proc.pid) - cpu0
        finally:
            proc.terminate()
            proc.wait(timeout=10)
    mode = f"paced at {rate:g} msgs/s per client" if rate > 0 else "flat out"
    report(
        f"chat: {args.clients} clients x {args.messages} messages, one room, {mode}, "
        f"{args.size}-byte texts, 127.0.0.1",
        [
            ("delivered / expected", f"{r['delivered']:,} / {r['expected']:,}"),
            ("per-sender order kept", str(r["in_order"])),
            ("wall time", f"{r['elapsed']:.2f} s"),
            ("messages accepted", f"{r['sent_per_s']:,.0f} msgs/s"),
            ("deliveries (fan-out)", f"{r['delivered_per_s']:,.0f} msgs/s"),
            ("delivery latency p50 / p99", f"{r['p50']:.2f} / {r['p99']:.2f} ms"),
            (
                "server CPU (share of wall)",
                f"{r['server_cpu']:.2f} s ({r['server_cpu'] / r['elapsed']:.0%})",
            ),
        ],
    )
    return r["delivered"] == r["expected"] and r["in_order"]


if __name__ == "__main__":
    main()
