"""Benchmark: ``ponder serve`` with 32 concurrent clients against the same requests sent one at a time.

The server is the real command, ``ponder serve DIR`` in its own process, over a randomly
initialised Llama saved here (no download; ``ponder.testing.tiny_engine``, hidden
``--hidden``, ``--layers`` layers; its EOS logit is zeroed so every completion has exactly
``--budget`` reasoning and ``--max-tokens`` answer tokens unless the sampled model closes
``</think>`` itself). Each request asks a different
arithmetic question with ``thinking.budget_tokens=--budget``, ``max_tokens=--max-tokens`` and
temperature 0.7 (no seed: seeded requests are batched alone by design).

* **sequential**: the N = clients x per-client requests, one after another (each is its own batch);
* **concurrent**: ``--clients`` threads, each sending its ``--per-client`` requests back to back,
  all at once: each request joins the server's running decode batch (continuous batching;
  ``--dynamic``: the batcher merges whatever is pending into one ``generate`` call instead).

Both runs use the same server process and requests (token counts from ``usage``); a warm-up
request precedes them. Printed: requests/s, tokens/s, p50/p99 latency per mode, the
throughput ratio, p50 against the lone p50, and rows per decode step (``--dynamic``: the mean batch
size; from ``/metrics``). The server runs at the same ``nice``
level as this script; on a shared machine run it twice.

    .venv/bin/python bench/serve.py                       # 32 clients x 2 requests
    .venv/bin/python bench/serve.py --clients 8 --quick   # a smaller check
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ponder.testing import tiny_engine  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def request_body(i: int, args) -> dict:
    return {"model": "bench", "messages": [{"role": "user", "content": f"What is {17 * i + 3} + {29 * i % 97}?"}],
            "max_tokens": args.max_tokens, "temperature": 0.7,
            "thinking": {"type": "enabled", "budget_tokens": args.budget}}


def one(client: httpx.Client, url: str, body: dict) -> tuple[float, int]:
    t0 = time.perf_counter()
    r = client.post(url, json=body, timeout=600)
    r.raise_for_status()
    return time.perf_counter() - t0, r.json()["usage"]["completion_tokens"]


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, max(0, round(q * (len(xs) - 1))))]


def metric(base: str, name: str) -> float:
    for line in httpx.get(base + "/metrics").text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    return 0.0


def run(args) -> None:
    n = args.clients * args.per_client
    with tempfile.TemporaryDirectory() as tmp:
        tiny_engine(hidden=args.hidden, layers=args.layers, save_to=tmp)
        port = free_port()
        ponder = Path(sys.executable).parent / "ponder"
        cmd = [str(ponder), "serve", tmp, "--port", str(port), "--model-name", "bench",
               "--set", "log_requests=false", "--set", f"max_batch_rows={max(64, args.clients)}",
               "--set", f"continuous_batching={str(not args.dynamic).lower()}"]
        server = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        base, url = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{port}/v1/chat/completions"
        try:
            deadline = time.time() + 120
            while True:
                try:
                    if httpx.get(base + "/health").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if server.poll() is not None or time.time() > deadline:
                    raise SystemExit(f"the server did not start: {server.stderr.read() if server.stderr else ''}")
                time.sleep(0.2)
            bodies = [request_body(i, args) for i in range(n)]
            with httpx.Client() as c:
                one(c, url, bodies[0])  # warm-up

                t0 = time.perf_counter()
                seq = [one(c, url, b) for b in bodies]
                seq_wall = time.perf_counter() - t0

            batches0, reqs0 = metric(base, "ponder_batches_total"), metric(base, "ponder_batch_requests_total")
            steps0, rows0 = metric(base, "ponder_decode_steps_total"), metric(base, "ponder_decode_rows_total")
            conc: list[tuple[float, int]] = []
            lock = threading.Lock()
            go = threading.Barrier(args.clients + 1)

            def client(k: int) -> None:
                with httpx.Client() as c:
                    go.wait()
                    for b in bodies[k * args.per_client:(k + 1) * args.per_client]:
                        res = one(c, url, b)
                        with lock:
                            conc.append(res)

            threads = [threading.Thread(target=client, args=(k,)) for k in range(args.clients)]
            for t in threads:
                t.start()
            go.wait()
            t0 = time.perf_counter()
            for t in threads:
                t.join()
            conc_wall = time.perf_counter() - t0
            batches = metric(base, "ponder_batches_total") - batches0
            served = metric(base, "ponder_batch_requests_total") - reqs0
            steps = metric(base, "ponder_decode_steps_total") - steps0
            rows = metric(base, "ponder_decode_rows_total") - rows0
        finally:
            server.terminate()
            server.wait(10)

    # sampled completions may close </think> before the budget, so each mode counts its own tokens
    tokens = {"sequential": sum(t for _, t in seq), "concurrent": sum(t for _, t in conc)}
    print(f"ponder serve: {n} requests ({args.clients} clients x {args.per_client}), "
          f"{args.budget} reasoning + {args.max_tokens} answer tokens each, model hidden {args.hidden} x "
          f"{args.layers} layers, load average {os.getloadavg()[0]:.1f}")
    print(f"{'mode':<12}{'req/s':>8}{'tokens/s':>10}{'p50 ms':>9}{'p99 ms':>9}")
    for name, res, wall in (("sequential", seq, seq_wall), ("concurrent", conc, conc_wall)):
        lat = [x for x, _ in res]
        print(f"{name:<12}{n / wall:>8.2f}{tokens[name] / wall:>10.0f}{1000 * pct(lat, .5):>9.0f}{1000 * pct(lat, .99):>9.0f}")
    lone = pct([x for x, _ in seq], .5)
    print(f"throughput ratio concurrent / sequential: {seq_wall / conc_wall:.2f}x; "
          f"concurrent p50 / lone p50: {pct([x for x, _ in conc], .5) / lone:.2f}x")
    if steps:  # continuous batching
        print(f"continuous batching: {rows / steps:.1f} rows per decode step over {steps:.0f} steps, "
              f"{served:.0f} requests joined {batches:.0f} batches")
    else:
        print(f"dynamic batching: mean batch {served / max(batches, 1):.1f} requests over {batches:.0f} generate calls")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--clients", type=int, default=32, help="concurrent clients")
    p.add_argument("--per-client", type=int, default=2, help="requests each client sends back to back")
    p.add_argument("--budget", type=int, default=48, help="thinking budget (reasoning tokens) per request")
    p.add_argument("--max-tokens", type=int, default=16, help="answer tokens per request")
    p.add_argument("--hidden", type=int, default=128, help="model width")
    p.add_argument("--layers", type=int, default=4, help="model depth")
    p.add_argument("--dynamic", action="store_true", help="dynamic batching instead of continuous (to compare)")
    p.add_argument("--quick", action="store_true", help="1 request per client, budget 16")
    args = p.parse_args()
    if args.quick:
        args.per_client, args.budget = 1, 16
    run(args)


if __name__ == "__main__":
    main()
