"""Monte Carlo with tdsl's random numbers (examples/monte_carlo.tdsl): pi and a European call.

    python examples/monte_carlo.py [--target c|numpy|opencl] [--batches 4] [--key 1]

Prints each estimate with its standard error and how many standard errors it is from the
truth (pi; the Black-Scholes price); `--check` makes a miss of more than 4 the exit status.
"""
from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import tdsl

HERE = Path(__file__).resolve().parent
OPTION = dict(spot=100.0, strike=105.0, rate=0.05, sigma=0.2, years=1.0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", default="c")
    parser.add_argument("--batches", type=int, default=4, help="batches of a million samples")
    parser.add_argument("--key", type=int, default=1)
    parser.add_argument("--check", action="store_true", help="exit 1 when an estimate is 4 standard errors off")
    args = parser.parse_args(argv)
    m = tdsl.load(HERE / "monte_carlo.tdsl", target=args.target)
    start = time.perf_counter()
    pi, pi_error = m.estimate_pi(args.key, args.batches)
    price, price_error = m.call_price(args.key, args.batches, *OPTION.values())
    exact = float(m.black_scholes_call(*OPTION.values()))
    elapsed = time.perf_counter() - start
    misses = [abs(pi - math.pi) / pi_error, abs(price - exact) / price_error]
    print(f"target {args.target}, {args.batches} x 1,000,000 samples, {elapsed:.2f} s")
    print(f"pi        {pi:.6f} +- {pi_error:.6f}   (pi = {math.pi:.6f}: {misses[0]:.2f} standard errors)")
    print(f"call      {price:.6f} +- {price_error:.6f}   (Black-Scholes {exact:.6f}: {misses[1]:.2f} standard errors)")
    if args.check and max(misses) > 4:
        print("an estimate is more than 4 standard errors off", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
