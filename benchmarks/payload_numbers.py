"""What the exact-number rule costs on the hot path (docs/validation.md, "Numbers").

    .venv/bin/python benchmarks/payload_numbers.py

Every predict body is parsed by orjson; ``http.payload.check_numbers`` then decides, with a cheap screen,
whether the body could hold a number a 64-bit float does not keep exactly, and only then parses it a
second time to check each number. Measured in one run, per body, in µs (CPU time of this process):

- ``orjson``    : the parse every request pays anyway (the baseline);
- ``regex-19``  : the screen of the previous code (a 19-digit run, integers only), for comparison;
- ``check``     : ``check_numbers`` as the request path calls it: the screen alone on the first two
  bodies (nothing to check), the screen plus the exact second parse on the third (a 17-digit float).
"""
from __future__ import annotations

import json
import re
import time

import orjson

from modelplatform.http.payload import check_numbers

QUOTE = b'{"customer_id": "c-1001", "vehicle": "suv", "driver_age": 42, "annual_km": 12000, "score": 0.25}'
BIG = json.dumps({"rows": [{"a": i * 1.5, "b": f"hello world {i}", "c": 123456789} for i in range(20000)]}).encode()
LONG_DIGITS = QUOTE[:-1] + b', "exact": 0.30000000000000004}'
OLD_SCREEN = re.compile(rb"[0-9]{19}")


def per_call(function, number: int) -> float:
    started = time.process_time()
    for _ in range(number):
        function()
    return (time.process_time() - started) / number * 1e6


def main() -> None:
    print(f"{'body':<28}{'bytes':>9}{'orjson µs':>12}{'regex-19 µs':>13}{'check µs':>11}{'check/orjson':>14}")
    for name, body, number in (("quote", QUOTE, 200_000), ("1 MiB of rows", BIG, 50),
                               ("quote, 17-digit float", LONG_DIGITS, 50_000)):
        parse = per_call(lambda body=body: orjson.loads(body), number)
        old = per_call(lambda body=body: OLD_SCREEN.search(body), number)
        check = per_call(lambda body=body: check_numbers(body), number)
        print(f"{name:<28}{len(body):>9}{parse:>12.2f}{old:>13.2f}{check:>11.2f}{check / parse:>14.2f}")


if __name__ == "__main__":
    main()
