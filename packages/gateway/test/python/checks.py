"""Shared by the client scripts here: the gateway's address and key, named checks, one JSON line.

A script is run as `python <script> <gateway-url> [api-key]`; the key may instead come from the
environment as BETA9_API_KEY (kept out of the process list). Each check either returns what it saw,
which goes into the results, or raises; a failed check is reported on stderr and makes the script
exit 1, after the JSON line (with its "failures") has been printed on stdout.
"""

import json
import os
import sys
from typing import Any, Callable, Dict, List, Tuple


class CheckFailed(Exception):
    """A check's expectation did not hold."""


def require(condition: bool, message: str) -> None:
    if not condition:
        raise CheckFailed(message)


def target() -> Tuple[str, str, str]:
    """(gateway URL, API key, model name) from argv and the environment."""
    if len(sys.argv) < 2:
        sys.exit(f"usage: {os.path.basename(sys.argv[0])} <gateway-url> [api-key]  (or BETA9_API_KEY)")
    key = sys.argv[2] if len(sys.argv) > 2 else os.environ.get("BETA9_API_KEY", "")
    if not key:
        sys.exit("no API key: pass it as the second argument or set BETA9_API_KEY")
    return sys.argv[1].rstrip("/"), key, os.environ.get("BETA9_MODEL", "smollm2")


class Checks:
    def __init__(self, client: str, version: str) -> None:
        self.results: Dict[str, Any] = {"client": client, "version": version}
        self.failures: List[str] = []

    def run(self, name: str, check: Callable[[], Any]) -> None:
        try:
            self.results[name] = check()
        except Exception as err:  # noqa: BLE001 - every failure is reported, none stops the rest
            self.failures.append(f"{name}: {type(err).__name__}: {err}")

    def finish(self) -> None:
        print(json.dumps({**self.results, "failures": self.failures}), flush=True)
        for failure in self.failures:
            print(f"FAILED {self.results['client']} {failure}", file=sys.stderr)
        sys.exit(1 if self.failures else 0)
