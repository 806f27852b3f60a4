"""What the slixmpp interop scripts share: their command line, how a client is pointed
at Pipit's STARTTLS or Direct TLS port with certificate checks on, and a main() that
never hangs its caller.

The scripts import it from their own directory (Python puts the script's directory
first on sys.path).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from pathlib import Path
from typing import Awaitable, Callable

import slixmpp

# XEP-0368: the ALPN protocol id a client offers on a Direct TLS connection.
ALPN = "xmpp-client"


class Failure(Exception):
    """The check failed; the message says why."""


def configure_tls(client: slixmpp.ClientXMPP, args: argparse.Namespace) -> None:
    """Verifies the server certificate against --cafile (the self-signed certificate
    is its own trust anchor and names localhost, so no check is turned off), and uses
    exactly the transport --mode names: Direct TLS (XEP-0368) with ALPN, or STARTTLS;
    never plaintext, never a fallback to the other on the same port."""
    client.ca_certs = Path(args.cafile)
    if args.mode == "direct":
        client.enable_direct_tls = True
        client.enable_starttls = False
        client.ssl_context.set_alpn_protocols([ALPN])
    else:
        client.enable_direct_tls = False
        client.enable_starttls = True
    client.enable_plaintext = False


def parse_args(description: str, argv: list[str]) -> argparse.Namespace:
    """The command line every interop script takes."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--host", required=True)
    p.add_argument("--port", required=True, type=int)
    p.add_argument("--mode", required=True, choices=["starttls", "direct"])
    p.add_argument("--cafile", required=True, help="PEM certificate(s) to trust")
    p.add_argument("--sender", required=True)
    p.add_argument("--sender-password", required=True)
    p.add_argument("--receiver", required=True)
    p.add_argument("--receiver-password", required=True)
    p.add_argument("--timeout", type=float, default=30.0, help="hard limit for the whole check, seconds")
    p.add_argument("--step-timeout", type=float, default=10.0, help="limit for one step")
    p.add_argument("--close-timeout", type=float, default=3.0, help="wait for the server's </stream>")
    p.add_argument("--debug", action="store_true", help="log slixmpp's traffic to stderr")
    args = p.parse_args(argv)
    if not Path(args.cafile).is_file():
        p.error(f"--cafile {args.cafile}: no such file")
    return args


def main(
    description: str,
    run: Callable[[argparse.Namespace], Awaitable[None]],
    done: str,
    argv: list[str],
) -> int:
    """Runs `run` under a timeout; prints PASS/FAIL; 0 on success, 1 on failure, 3 on
    a timeout."""
    args = parse_args(description, argv)
    logging.basicConfig(
        level=logging.DEBUG if args.debug else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )

    # A last resort should the event loop itself get stuck: never hang the caller.
    def on_alarm(_signum, _frame) -> None:
        print(f"FAIL: hard timeout: still running after {args.timeout + 5:.0f} s", flush=True)
        os._exit(3)

    signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(int(args.timeout) + 5)

    async def bounded() -> None:
        await asyncio.wait_for(run(args), args.timeout)

    try:
        asyncio.run(bounded())
    except Failure as e:
        print(f"FAIL: {e}", flush=True)
        return 1
    except asyncio.TimeoutError:
        print(f"FAIL: timeout: the check did not finish within {args.timeout} s", flush=True)
        return 3
    print(f"PASS: slixmpp {slixmpp.__version__} {done} over {args.mode}", flush=True)
    return 0
