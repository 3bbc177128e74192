"""Send a bounded number of quote requests to a local server (the demo), to have traffic to replay.

    .venv/bin/python examples/send_quotes.py [--url http://127.0.0.1:8000] [--count 2000] [--seed 1]

Unpinned calls (routed by the A/B test), with 1% unknown vehicles (rejected) and 1% inputs missing
``annual_km`` (invalid). Only for a server on this machine: it refuses any host but loopback.
"""
from __future__ import annotations

import argparse
import json
import random
import urllib.error
import urllib.request
from collections import Counter
from urllib.parse import urlparse

LOOPBACK = {"127.0.0.1", "localhost", "::1"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    if urlparse(args.url).hostname not in LOOPBACK:
        raise SystemExit(f"{args.url}: only a local server (127.0.0.1) is a target")
    rng = random.Random(args.seed)
    statuses: Counter[int] = Counter()
    for i in range(min(args.count, 100_000)):
        quote = {"customer_id": f"c-{rng.randrange(5000)}", "vehicle": rng.choice(["hatchback", "sedan", "suv", "van"]),
                 "driver_age": rng.randint(17, 85), "annual_km": rng.randrange(0, 60_000, 500)}
        roll = rng.random()
        if roll < 0.01:
            quote["vehicle"] = "tractor"
        elif roll < 0.02:
            del quote["annual_km"]
        request = urllib.request.Request(f"{args.url}/models/auto_pricing/predict", data=json.dumps(quote).encode(),
                                         headers={"Content-Type": "application/json", "X-Request-ID": f"quote-{i}"})
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                statuses[response.status] += 1
        except urllib.error.HTTPError as exc:
            statuses[exc.code] += 1
    print("sent", sum(statuses.values()), "quotes:", dict(sorted(statuses.items())))


if __name__ == "__main__":
    main()
