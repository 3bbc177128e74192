"""Open-loop load at a fixed rate (no coordinated omission), bounded in time (adapted from the peers
comparison's openloop.py).

Request i is due at t0 + i/rate whether or not earlier answers have come back; its latency is measured from
that intended send time, so a stalled server (or a stalled client) shows up in the figures instead of
silently lowering the offered load. Connections are kept alive and opened as needed (up to --max-conns).

    python openloop.py URL BODY_FILE [--rate 300] [--seconds 20] [--warmup 2] [--timeout 10]

Prints one line: OPENLOOP_JSON {...} with sent, ok, non_2xx, errors, p50/p90/p99/p999/max (ms, from intended
send time), the achieved send rate and the sender's worst lag behind schedule.
Needs aiohttp.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time

import aiohttp


async def run(args: argparse.Namespace) -> dict:
    body = open(args.body_file, "rb").read()
    headers = {"Content-Type": "application/json"}
    connector = aiohttp.TCPConnector(limit=args.max_conns, force_close=False)
    timeout = aiohttp.ClientTimeout(total=args.timeout)
    latencies: list[float] = []
    statuses: dict[str, int] = {}
    errors: dict[str, int] = {}
    max_lag = 0.0

    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        async def one(intended: float, record: bool) -> None:
            try:
                async with session.post(args.url, data=body, headers=headers) as response:
                    await response.read()
                    status = response.status
            except Exception as exc:  # noqa: BLE001 — every failure is counted, by type
                if record:
                    errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1
                return
            if record:
                latencies.append(time.perf_counter() - intended)
                statuses[str(status)] = statuses.get(str(status), 0) + 1

        async def phase(seconds: float, record: bool) -> tuple[int, float]:
            nonlocal max_lag
            total = int(seconds * args.rate)
            tasks = []
            t0 = time.perf_counter()
            for i in range(total):
                intended = t0 + i / args.rate
                delay = intended - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                elif record:
                    max_lag = max(max_lag, -delay)
                tasks.append(asyncio.create_task(one(intended, record)))
            send_seconds = time.perf_counter() - t0
            # bounded: every request has its own timeout; give them that long at most to finish
            await asyncio.wait(tasks, timeout=args.timeout + 5) if tasks else None
            return total, send_seconds

        await phase(args.warmup, record=False)
        sent, send_seconds = await phase(args.seconds, record=True)

    latencies.sort()

    def pct(q: float) -> float:
        if not latencies:
            return float("nan")
        return latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000

    ok = sum(n for s, n in statuses.items() if s.startswith("2"))
    return {
        "rate": args.rate, "seconds": args.seconds, "sent": sent, "answered": len(latencies), "ok": ok,
        "non_2xx": len(latencies) - ok, "errors": errors, "statuses": statuses,
        "unanswered": sent - len(latencies) - sum(errors.values()),
        "achieved_send_rate": sent / send_seconds if send_seconds else 0.0,
        "max_send_lag_ms": max_lag * 1000,
        "p50_ms": pct(0.50), "p90_ms": pct(0.90), "p99_ms": pct(0.99), "p999_ms": pct(0.999),
        "max_ms": latencies[-1] * 1000 if latencies else float("nan"),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("url")
    parser.add_argument("body_file")
    parser.add_argument("--rate", type=float, default=300.0)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds at the same rate, not recorded")
    parser.add_argument("--timeout", type=float, default=10.0, help="per-request limit, seconds")
    parser.add_argument("--max-conns", type=int, default=256)
    args = parser.parse_args()
    result = asyncio.run(run(args))
    print("OPENLOOP_JSON " + json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
