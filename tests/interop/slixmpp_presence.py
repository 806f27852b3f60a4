#!/usr/bin/env python3
"""Interop check: two slixmpp clients subscribe to each other's presence on Pipit.

    slixmpp_presence.py --host 127.0.0.1 --port 5222 --mode starttls|direct \\
        --cafile DATA_DIR/tls/selfsigned-cert.pem \\
        --sender alice@localhost --sender-password PW \\
        --receiver bob@localhost --receiver-password PW [--debug]

Both fetch their rosters (slixmpp sends the `ver` it has) and go available. The
sender asks the receiver for its presence; the receiver approves, and the sender's
roster (kept by slixmpp from the server's pushes) shows `to`, and the receiver's
presence arrives. Then the other way round, until both rosters say `both` and each
has seen the other available (RFC 6121 §3.1). Requests are answered by hand, not by
slixmpp's auto-authorize, so each step is the server's doing.

Prints `ok ...` lines and exits 0 on success; prints `FAIL: ...` and exits 1 on
failure, 3 on the hard timeout. --debug logs slixmpp's SEND/RECV lines to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

import slixmpp

from harness import Failure, configure_tls, main


class Client(slixmpp.ClientXMPP):
    """A ClientXMPP that answers nothing by itself; subscription requests and the
    bare JIDs it has seen available go to queues."""

    def __init__(self, jid: str, password: str, args: argparse.Namespace) -> None:
        super().__init__(jid, password)
        self.label = jid
        self.auto_authorize = None
        self.auto_subscribe = False
        self.register_plugin("xep_0199")
        configure_tls(self, args)
        loop = asyncio.get_running_loop()
        self.session = loop.create_future()
        self.requests: asyncio.Queue = asyncio.Queue()
        self.seen: set[str] = set()
        self.changed = asyncio.Event()
        self.add_event_handler("session_start", self._on_session_start)
        self.add_event_handler(
            "presence_subscribe", lambda p: self.requests.put_nowait(p["from"].bare)
        )
        self.add_event_handler("presence_available", self._on_available)
        self.add_event_handler("roster_update", lambda _iq: self.changed.set())
        for event, why in [
            ("connection_failed", "cannot connect"),
            ("failed_all_auth", "SASL failed"),
            ("stream_error", "stream error from the server"),
        ]:
            self.add_event_handler(event, self._failer(why))

    def _failer(self, why: str):
        def handler(detail=None) -> None:
            if not self.session.done():
                self.session.set_exception(Failure(f"{self.label}: {why}: {detail}"))

        return handler

    async def _on_session_start(self, _event) -> None:
        await self.get_roster(timeout=10)
        self.send_presence()
        # Ordering barrier: once the ping is answered, the presence has taken effect.
        await self.plugin["xep_0199"].ping(jid=self.boundjid.domain, timeout=10)
        if not self.session.done():
            self.session.set_result(None)

    def _on_available(self, presence) -> None:
        self.seen.add(presence["from"].bare)
        self.changed.set()

    def subscription(self, contact: str) -> str:
        return self.client_roster[contact]["subscription"]

    async def until(self, what: str, holds, timeout: float) -> None:
        """Waits, event by event, until `holds()`; fails after `timeout`."""

        async def loop() -> None:
            while not holds():
                self.changed.clear()
                await self.changed.wait()

        try:
            await asyncio.wait_for(loop(), timeout)
        except asyncio.TimeoutError:
            raise Failure(f"{self.label}: not {what} within {timeout} s") from None

    async def request(self, timeout: float) -> str:
        try:
            return await asyncio.wait_for(self.requests.get(), timeout)
        except asyncio.TimeoutError:
            raise Failure(f"{self.label}: no subscription request within {timeout} s") from None


async def wait(future: asyncio.Future, what: str, timeout: float) -> None:
    try:
        await asyncio.wait_for(asyncio.shield(future), timeout)
    except asyncio.TimeoutError:
        raise Failure(f"no {what} within {timeout} s") from None


async def one_way(asker: Client, contact: Client, step: float, mode: str) -> None:
    """`asker` subscribes to `contact`'s presence; `contact` approves."""
    a, c = asker.boundjid.bare, contact.boundjid.bare
    asker.send_presence(pto=c, ptype="subscribe")
    came = await contact.request(step)
    if came != a:
        raise Failure(f"{c} got a request from {came}, expected {a}")
    contact.send_presence(pto=a, ptype="subscribed")
    await asker.until(
        f"subscribed to {c}", lambda: asker.subscription(c) in ("to", "both"), step
    )
    await asker.until(f"seeing {c} available", lambda: c in asker.seen, step)
    print(f"ok {mode} {a} sees {c} (subscription {asker.subscription(c)})")


async def run(args: argparse.Namespace) -> None:
    sender = Client(args.sender + "/desk", args.sender_password, args)
    receiver = Client(args.receiver + "/phone", args.receiver_password, args)
    clients = (sender, receiver)
    step = args.step_timeout
    try:
        for client in clients:
            client.connect(args.host, args.port)
        for client in clients:
            await wait(client.session, f"{client.label} session", step)
        await one_way(sender, receiver, step, args.mode)
        await one_way(receiver, sender, step, args.mode)
        for me, other in [(sender, receiver), (receiver, sender)]:
            got = me.subscription(other.boundjid.bare)
            if got != "both":
                raise Failure(f"{me.label}: subscription to {other.boundjid.bare} is {got}")
        print(f"ok {args.mode} both rosters say both")
        for client in clients:
            client.disconnect(wait=args.close_timeout)
        await asyncio.sleep(0.2)
    finally:
        for client in clients:
            client.cancel_connection_attempt()
            if client.transport is not None:
                client.abort()


if __name__ == "__main__":
    sys.exit(main(__doc__.split("\n\n")[0], run, "mutual presence", sys.argv[1:]))
