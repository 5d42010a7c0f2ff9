"""Serving throughput and latency of POST /recommend at fixed request rates; prints a table, writes JSON.

    python simulations/benchmark_serving.py --release lstm=RUN/release --release mf=RUN_MF/release \\
        [--rates 100,200,300,500,700] [--duration 10] [--out runs/bench-serving/serving.json]

For each release a real ``fedrec serve RELEASE --port P --workers N --torch-threads T``
process is started on a free port of 127.0.0.1, and /readyz is awaited. Then,
for each rate, an open-loop generator (wrk2-style) sends ``rate * duration`` requests: request i
is due at t0 + i / rate whatever the answers before it, and its latency is counted from that
due time, so a server that falls behind is charged for the queue it builds (no coordinated
omission). The client runs in this process on asyncio (uvloop when installed) with keep-alive
connections: on one machine the generator's CPU is part of the measurement, and it is reported.
``--client raw`` (the default) speaks HTTP/1.1 over asyncio streams; ``--client httpx`` uses
httpx.AsyncClient, which was measured here at about 2.5 ms of CPU a request, more than the
server's own work, so at 500 requests/s it alone would take more than one of two cores.

Baskets are real: histories of the embedded Beauty data (``fedrec.data.load_dataset``), a
window of 1 to 20 consecutive items of a random user ending at a random point of their
history, in the shop's item ids (the release's items.parquet, dense ``item`` -> ``item_id``).

Per rate: requests sent, answered (200), errors (other status, timeouts, or still unanswered
when the drain time ran out), achieved throughput (answered / time from the first due time to
the last answer), p50 / p90 / p99 / max latency over all requests (a failed one counts with the
time it was given up at), and the CPU used by the server, by the generator and by everything
else on the machine (the table shows them in cores). A rate "holds" the goal when p99 <=
--goal-p99-ms with no error; the highest tested rate that holds is reported per release. The
load average (os.getloadavg) is recorded before and after each rate: other jobs on a small
machine change the figures, and the "other" CPU says by how much.

On 2 cores, ``--workers 2 --torch-threads 1`` measured best (one process is held to about one
core by the GIL; torch's default of one thread per core oversubscribes two workers): they are
``fedrec serve``'s defaults there.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import signal
import socket
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import psutil

ROOT = Path(__file__).resolve().parent.parent
FEDREC = [sys.executable, "-m", "fedrec.cli"]


# --- baskets


def basket_bodies(release_dir: Path, *, count: int, k: int, max_items: int, seed: int) -> list[bytes]:
    """``count`` JSON request bodies with Beauty histories of 1..max_items items in shop ids."""
    from fedrec.data import load_dataset

    items = pd.read_parquet(release_dir / "items.parquet", columns=["item", "item_id"])
    shop_id = dict(zip(items["item"].astype(int), items["item_id"].astype(str)))
    sequences = [s for s in load_dataset("beauty").sequences if len(s)]
    rng = random.Random(seed)
    bodies = []
    while len(bodies) < count:
        seq = sequences[rng.randrange(len(sequences))]
        end = rng.randint(1, len(seq))
        length = min(rng.randint(1, max_items), end)
        basket = [shop_id[int(i)] for i in seq[end - length:end] if int(i) in shop_id]
        if basket:
            bodies.append(json.dumps({"items": basket, "k": k}).encode())
    return bodies


# --- the server


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """A ``fedrec serve`` process (and its workers) on 127.0.0.1, stopped on exit."""

    def __init__(self, release_dir: Path, *, workers: int, torch_threads: int, log_path: Path) -> None:
        self.port = free_port()
        env = dict(os.environ)
        self.command = [*FEDREC, "serve", str(release_dir), "--host", "127.0.0.1", "--port", str(self.port),
                        "--workers", str(workers), "--torch-threads", str(torch_threads)]
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self.log = log_path.open("wb")
        self.proc = subprocess.Popen(self.command, env=env, cwd=ROOT, stdout=self.log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        self.url = f"http://127.0.0.1:{self.port}"

    def wait_ready(self, timeout: float = 180.0) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the server exited with {self.proc.returncode}; see {self.log.name}")
            try:
                answer = httpx.get(self.url + "/readyz", timeout=2.0, trust_env=False)
                if answer.status_code == 200:
                    return answer.json()
            except httpx.HTTPError:
                pass
            time.sleep(0.25)
        raise RuntimeError(f"the server was not ready after {timeout:.0f} s; see {self.log.name}")

    def cpu_by_process(self) -> dict[int, float]:
        """User + system CPU seconds of the server process and of each of its children (the
        uvicorn workers), by pid."""
        try:
            top = psutil.Process(self.proc.pid)
            processes = [top, *top.children(recursive=True)]
        except psutil.NoSuchProcess:
            return {}
        seconds = {}
        for p in processes:
            try:
                t = p.cpu_times()
                seconds[p.pid] = t.user + t.system
            except psutil.NoSuchProcess:
                pass
        return seconds

    def cpu_seconds(self) -> float:
        return sum(self.cpu_by_process().values())

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGINT)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.log.close()


# --- the clients


class HttpxClient:
    """httpx.AsyncClient with keep-alive (about 2-3 ms of CPU a request here: see --client)."""

    name = f"httpx {httpx.__version__}"

    def __init__(self, url: str, *, connections: int, timeout: float) -> None:
        limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
        self.client = httpx.AsyncClient(base_url=url, limits=limits, timeout=timeout, trust_env=False,
                                        headers={"content-type": "application/json"})

    async def post(self, body: bytes) -> tuple[int, bytes]:
        try:
            answer = await self.client.post("/recommend", content=body)
        except httpx.TimeoutException:
            raise TimeoutError from None
        return answer.status_code, answer.content

    async def close(self) -> None:
        await self.client.aclose()


class RawClient:
    """HTTP/1.1 POST over asyncio streams with keep-alive: at most ``connections`` open, idle
    ones reused (most recent first). As browsers and httpx do, a connection idle for longer
    than ``STALE_S`` (uvicorn closes idle ones after 5 s) is not reused, and a request on a
    reused connection that the server had already closed (no byte of an answer) is sent once
    more on a new one. A connection whose request timed out or was cut short is closed."""

    name = "raw asyncio HTTP/1.1 keep-alive"
    STALE_S = 4.0

    def __init__(self, url: str, *, connections: int, timeout: float) -> None:
        hostport = url.split("://", 1)[1]
        self.host, port = hostport.rsplit(":", 1)
        self.port, self.timeout = int(port), timeout
        self.head = (f"POST /recommend HTTP/1.1\r\nHost: {hostport}\r\nContent-Type: application/json\r\n"
                     "Content-Length: ").encode()
        self.slots = asyncio.Semaphore(connections)
        self.idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter, float]] = []
        self.open: set[asyncio.StreamWriter] = set()

    def _reusable(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
        now = time.monotonic()
        while self.idle:
            reader, writer, since = self.idle.pop()
            if now - since < self.STALE_S and not reader.at_eof():
                return reader, writer
            self._close(writer)
        return None

    def _close(self, writer: asyncio.StreamWriter) -> None:
        self.open.discard(writer)
        writer.close()

    async def post(self, body: bytes) -> tuple[int, bytes]:
        async with self.slots:
            start = time.monotonic()
            conn = self._reusable()
            reused = conn is not None
            while True:
                try:
                    if conn is None:
                        conn = await asyncio.wait_for(asyncio.open_connection(self.host, self.port), self.timeout)
                        self.open.add(conn[1])
                    left = self.timeout - (time.monotonic() - start)
                    status, content, keep = await asyncio.wait_for(self._exchange(*conn, body), max(left, 0.001))
                    break
                except (asyncio.IncompleteReadError, ConnectionResetError, BrokenPipeError) as err:
                    self._close(conn[1])
                    closed_before_answer = not isinstance(err, asyncio.IncompleteReadError) or not err.partial
                    if not (reused and closed_before_answer):
                        raise
                    conn, reused = None, False  # the server had closed it while idle: once more, on a new one
                except BaseException:  # timeout, cancelled: the connection's state is unknown
                    if conn is not None:
                        self._close(conn[1])
                    raise
            if keep:
                self.idle.append((*conn, time.monotonic()))
            else:
                self._close(conn[1])
            return status, content

    async def _exchange(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                        body: bytes) -> tuple[int, bytes, bool]:
        writer.write(b"%s%d\r\n\r\n%s" % (self.head, len(body), body))
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        fields = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            fields[name.strip().lower()] = value.strip().lower()
        if "content-length" in fields:
            content = await reader.readexactly(int(fields["content-length"]))
        elif fields.get("transfer-encoding") == "chunked":
            parts = []
            while size := int((await reader.readuntil(b"\r\n")).split(b";")[0], 16):
                parts.append(await reader.readexactly(size))
                await reader.readexactly(2)
            await reader.readuntil(b"\r\n")  # no trailers expected: the blank line
            content = b"".join(parts)
        else:
            raise ConnectionError("an answer with neither Content-Length nor chunked encoding")
        return status, content, fields.get("connection") != "close"

    async def close(self) -> None:
        for writer in self.open:
            writer.close()
        self.open.clear()
        self.idle.clear()


CLIENTS = {"raw": RawClient, "httpx": HttpxClient}

try:  # uvloop comes with uvicorn[standard]; it makes the generator lighter
    import uvloop

    RUN, LOOP = uvloop.run, f"uvloop {uvloop.__version__}"
except ImportError:
    RUN, LOOP = asyncio.run, "asyncio"


# --- the open-loop generator


async def fixed_rate(url: str, bodies: list[bytes], *, rate: float, count: int, timeout: float, drain: float,
                     connections: int, k: int, client_kind: str) -> dict:
    """Send ``count`` requests due at t0 + i / rate; latency from the due time."""
    latency = np.full(count, np.nan)
    service = np.full(count, np.nan)
    status: list[str] = ["unfinished"] * count
    last_done = [0.0]
    checked = [0, 0]  # answers parsed, answers with k items (or a flagged fallback)
    client = CLIENTS[client_kind](url, connections=connections, timeout=timeout)

    async def one(i: int, due: float) -> None:
        sent = time.perf_counter()
        try:
            code, content = await client.post(bodies[i % len(bodies)])
            done = time.perf_counter()
            status[i] = "ok" if code == 200 else f"http {code}"
            if code == 200 and i % 50 == 0:
                data = json.loads(content)
                checked[0] += 1
                checked[1] += len(data["items"]) == k or bool(data["fallback"])
        except (TimeoutError, asyncio.TimeoutError):
            done, status[i] = time.perf_counter(), "timeout"
        except Exception as err:  # refused, reset, cut short, bad answer: an error of that name
            done, status[i] = time.perf_counter(), type(err).__name__
        latency[i], service[i] = done - due, done - sent
        last_done[0] = max(last_done[0], done)

    tasks = []
    t0 = time.perf_counter() + 0.05
    try:
        for i in range(count):
            due = t0 + i / rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(i, due)))
        schedule_end = time.perf_counter()
        _, pending = await asyncio.wait(tasks, timeout=max(0.0, t0 + count / rate + drain - time.perf_counter()))
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        given_up = time.perf_counter()
    finally:
        await client.close()
    for i in range(count):
        if np.isnan(latency[i]):  # unanswered: counted at the time it was given up
            latency[i] = given_up - (t0 + i / rate)
    ok = sum(s == "ok" for s in status)
    kinds: dict[str, int] = {}
    for s in status:
        if s != "ok":
            kinds[s] = kinds.get(s, 0) + 1
    span = (last_done[0] or given_up) - t0
    ms = latency * 1000.0
    return {"rate": rate, "requests": count, "ok": ok, "errors": count - ok, "error_kinds": kinds,
            "throughput": ok / span if span > 0 else 0.0, "span_s": span,
            "schedule_lag_ms": max(0.0, (schedule_end - (t0 + (count - 1) / rate)) * 1000.0),
            "p50_ms": float(np.percentile(ms, 50)), "p90_ms": float(np.percentile(ms, 90)),
            "p99_ms": float(np.percentile(ms, 99)), "max_ms": float(ms.max()), "mean_ms": float(ms.mean()),
            "service_p50_ms": float(np.nanpercentile(service * 1000.0, 50)),
            "service_p99_ms": float(np.nanpercentile(service * 1000.0, 99)),
            "answers_checked": checked[0], "answers_with_k_items": checked[1]}


def machine_busy_seconds() -> float:
    """CPU seconds all CPUs of the machine spent busy since boot (not idle, not waiting on I/O)."""
    t = psutil.cpu_times()
    return sum(t) - t.idle - getattr(t, "iowait", 0.0)


def run_rate(url: str, bodies: list[bytes], rate: float, args: argparse.Namespace, server: Server) -> dict:
    count = max(1, min(int(round(rate * args.duration)), args.max_requests))
    load_before = os.getloadavg()
    busy_before = machine_busy_seconds()
    cpu_server, cpu_self = server.cpu_by_process(), time.process_time()
    result = RUN(fixed_rate(url, bodies, rate=rate, count=count, timeout=args.timeout, drain=args.drain,
                                    connections=args.connections, k=args.k, client_kind=args.client))
    by_process = {pid: cpu - cpu_server.get(pid, 0.0) for pid, cpu in server.cpu_by_process().items()}
    result["server_cpu_s"] = sum(by_process.values())
    result["server_cpu_s_by_process"] = {str(pid): round(cpu, 3) for pid, cpu in by_process.items()}
    result["generator_cpu_s"] = time.process_time() - cpu_self
    # Everyone else's CPU meanwhile (other jobs on the machine): all busy time less ours.
    result["other_cpu_s"] = max(0.0, machine_busy_seconds() - busy_before - result["server_cpu_s"]
                                - result["generator_cpu_s"])
    result["load_average_before"] = list(load_before)
    result["load_average_after"] = list(os.getloadavg())
    result["holds"] = result["errors"] == 0 and result["p99_ms"] <= args.goal_p99_ms
    return result


# --- main


def parse_release(text: str) -> tuple[str | None, Path]:
    label, sep, folder = text.partition("=")
    path = Path(folder if sep else label)
    if path.name != "release" and (path / "release").is_dir():
        path = path / "release"
    return (label if sep else None), path


def table(results: list[dict]) -> str:
    lines = [f"{'release':<8} {'rate':>6} {'sent':>6} {'errors':>6} {'req/s':>7} {'p50 ms':>7} {'p90 ms':>7} "
             f"{'p99 ms':>7} {'max ms':>7} {'srv cpu':>7} {'gen cpu':>7} {'oth cpu':>7} {'load1':>5}  holds"]
    for r in results:
        for x in r["rates"]:
            lines.append(f"{r['label']:<8} {x['rate']:>6g} {x['requests']:>6} {x['errors']:>6} {x['throughput']:>7.1f} "
                         f"{x['p50_ms']:>7.1f} {x['p90_ms']:>7.1f} {x['p99_ms']:>7.1f} {x['max_ms']:>7.1f} "
                         f"{x['server_cpu_s'] / x['span_s']:>7.2f} {x['generator_cpu_s'] / x['span_s']:>7.2f} "
                         f"{x['other_cpu_s'] / x['span_s']:>7.2f} "
                         f"{x['load_average_before'][0]:>5.2f}  {'yes' if x['holds'] else 'no'}")
        lines.append(f"{r['label']:<8} highest rate holding p99 <= {r['goal_p99_ms']:g} ms: "
                     f"{r['highest_rate_holding'] if r['highest_rate_holding'] is not None else 'none'}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--release", action="append", required=True, metavar="[LABEL=]DIR",
                        help="a release folder (or its run folder) to serve; repeat for several")
    parser.add_argument("--rates", default="100,200,300,500,700", help="requests per second, comma-separated")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of requests per rate")
    parser.add_argument("--max-requests", type=int, default=20000, help="at most this many requests per rate")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds at the first rate before measuring (discarded)")
    parser.add_argument("--pause", type=float, default=1.0, help="seconds of quiet between rates")
    parser.add_argument("--timeout", type=float, default=5.0, help="a request unanswered after this is an error")
    parser.add_argument("--drain", type=float, default=5.0, help="seconds after the last due time to wait for answers")
    parser.add_argument("--connections", type=int, default=64, help="most keep-alive connections the client opens")
    parser.add_argument("--client", choices=sorted(CLIENTS), default="raw",
                        help="raw: asyncio streams (light); httpx: httpx.AsyncClient, which costs ~2-3 ms CPU a "
                        "request here, more than the server, on the same 2 cores")
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--max-items", type=int, default=20, help="baskets hold 1 to this many items")
    parser.add_argument("--baskets", type=int, default=5000, help="distinct request bodies, sent round-robin")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=2, help="fedrec serve --workers")
    parser.add_argument("--torch-threads", type=int, default=1, help="fedrec serve --torch-threads")
    parser.add_argument("--goal-p99-ms", type=float, default=50.0)
    parser.add_argument("--goal-rate", type=float, default=500.0)
    parser.add_argument("--out", type=Path, default=Path("runs/bench-serving/serving.json"))
    args = parser.parse_args()
    rates = [float(r) for r in args.rates.split(",") if r.strip()]

    import torch

    results = []
    started = datetime.now(timezone.utc).isoformat(timespec="seconds")
    load_start = os.getloadavg()
    for spec in args.release:
        label, folder = parse_release(spec)
        bodies = basket_bodies(folder, count=args.baskets, k=args.k, max_items=args.max_items, seed=args.seed)
        log_path = args.out.parent / f"server-{label or folder.parent.name}.log"
        server = Server(folder, workers=args.workers, torch_threads=args.torch_threads, log_path=log_path)
        try:
            ready = server.wait_ready()
            label = label or ready.get("model", folder.parent.name)
            print(f"{label}: serving {folder} ({ready.get('model')}) on {server.url}", file=sys.stderr, flush=True)
            if args.warmup > 0:
                warm = argparse.Namespace(**{**vars(args), "duration": args.warmup})
                run_rate(server.url, bodies, rates[0], warm, server)
            per_rate = []
            for rate in rates:
                time.sleep(args.pause)
                x = run_rate(server.url, bodies, rate, args, server)
                per_rate.append(x)
                print(f"{label}: {rate:g}/s -> {x['throughput']:.1f}/s p50 {x['p50_ms']:.1f} p99 {x['p99_ms']:.1f} "
                      f"max {x['max_ms']:.1f} ms, {x['errors']} errors, load {x['load_average_before'][0]:.2f}",
                      file=sys.stderr, flush=True)
        finally:
            server.stop()
        holding = [x["rate"] for x in per_rate if x["holds"]]
        results.append({"label": label, "release": str(folder), "model": ready.get("model"),
                        "model_sha256": ready.get("model_sha256"), "server_command": server.command,
                        "goal_p99_ms": args.goal_p99_ms, "rates": per_rate,
                        "highest_rate_holding": max(holding) if holding else None,
                        "goal_met": any(x["holds"] and x["rate"] >= args.goal_rate for x in per_rate)})

    report = {
        "benchmark": "serving POST /recommend, fixed-rate open loop (latency from the due time)",
        "started": started, "command": [Path(sys.executable).name, *sys.argv],
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
                    "torch": torch.__version__, "load_average_start": list(load_start),
                    "load_average_end": list(os.getloadavg())},
        "settings": {"rates": rates, "duration_s": args.duration, "warmup_s": args.warmup, "timeout_s": args.timeout,
                     "drain_s": args.drain, "connections": args.connections, "k": args.k,
                     "basket_items": [1, args.max_items], "baskets": args.baskets, "seed": args.seed,
                     "workers": args.workers, "torch_threads": args.torch_threads,
                     "client": f"{CLIENTS[args.client].name} on {LOOP}",
                     "goal": {"p99_ms": args.goal_p99_ms, "rate": args.goal_rate}},
        "results": results,
        "goal_met": all(r["goal_met"] for r in results),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(table(results))
    print(f"load average (1, 5, 15 min) at start {tuple(round(v, 2) for v in load_start)}, "
          f"at end {tuple(round(v, 2) for v in os.getloadavg())} on {os.cpu_count()} CPUs; -> {args.out}")


if __name__ == "__main__":
    main()
