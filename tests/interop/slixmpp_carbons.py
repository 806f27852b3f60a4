#!/usr/bin/env python3
"""Interop check: slixmpp's XEP-0280 Message Carbons against Pipit.

    slixmpp_carbons.py --host 127.0.0.1 --port 5222 --mode starttls|direct \\
        --cafile DATA_DIR/tls/selfsigned-cert.pem \\
        --sender alice@localhost --sender-password PW \\
        --receiver bob@localhost --receiver-password PW [--debug]

The sender's account logs in twice: `desk`, with slixmpp's xep_0280 plugin, finds
urn:xmpp:carbons:2 in the server's disco#info and enables carbons; `phone` does not.
The phone sends the receiver a chat message: the receiver gets it, and the desk gets
a sent carbon (XEP-0280 "Sending Messages") from its own bare JID that carries it.
The receiver answers the phone: the desk gets a received carbon of the answer
("Receiving Messages"). All three then close their streams.

Prints `ok ...` lines and exits 0 on success; prints `FAIL: ...` and exits 1 on
failure, 3 on the hard timeout. --debug logs slixmpp's SEND/RECV lines to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import uuid

import slixmpp

from harness import Failure, configure_tls, main

CARBONS = "urn:xmpp:carbons:2"


class Client(slixmpp.ClientXMPP):
    """A ClientXMPP whose session start is a future and whose chat messages and
    carbons (as (direction, inner message) pairs) go to queues."""

    def __init__(self, jid: str, password: str, args: argparse.Namespace, carbons: bool) -> None:
        super().__init__(jid, password)
        self.label = jid
        self.register_plugin("xep_0199")
        self.register_plugin("xep_0030")
        if carbons:
            self.register_plugin("xep_0280")
        configure_tls(self, args)
        loop = asyncio.get_running_loop()
        self.session = loop.create_future()
        self.messages: asyncio.Queue = asyncio.Queue()
        self.carbons: asyncio.Queue = asyncio.Queue()
        self.add_event_handler("session_start", self._on_session_start)
        self.add_event_handler("message", self._on_message)
        # The plugin raises these only for a wrapper from our own bare JID.
        self.add_event_handler(
            "carbon_sent", lambda msg: self.carbons.put_nowait(("sent", msg["carbon_sent"]))
        )
        self.add_event_handler(
            "carbon_received",
            lambda msg: self.carbons.put_nowait(("received", msg["carbon_received"])),
        )
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
        self.send_presence()
        # Ordering barrier: once the ping is answered, the presence has taken effect.
        await self.plugin["xep_0199"].ping(jid=self.boundjid.domain, timeout=10)
        if not self.session.done():
            self.session.set_result(None)

    def _on_message(self, msg) -> None:
        # A carbon's wrapper has no body; only plain chat messages go here.
        if msg["type"] == "chat" and msg["body"]:
            self.messages.put_nowait(msg)

    async def next(self, queue: asyncio.Queue, what: str, timeout: float):
        try:
            return await asyncio.wait_for(queue.get(), timeout)
        except asyncio.TimeoutError:
            raise Failure(f"{self.label}: no {what} within {timeout} s") from None


async def wait(future: asyncio.Future, what: str, timeout: float) -> None:
    try:
        await asyncio.wait_for(asyncio.shield(future), timeout)
    except asyncio.TimeoutError:
        raise Failure(f"no {what} within {timeout} s") from None


def check_carbon(carbon, direction: str, expected: str, body: str, sender: str, to: str) -> None:
    kind, inner = carbon
    if kind != direction:
        raise Failure(f"got a {kind} carbon, expected a {direction} one")
    got = (inner["body"], str(inner["from"]), str(inner["to"]))
    if got != (body, sender, to):
        raise Failure(f"{direction} carbon carries {got}, expected {(body, sender, to)}")
    print(f"ok {expected}")


async def run(args: argparse.Namespace) -> None:
    desk = Client(args.sender + "/desk", args.sender_password, args, carbons=True)
    phone = Client(args.sender + "/phone", args.sender_password, args, carbons=False)
    receiver = Client(args.receiver, args.receiver_password, args, carbons=False)
    clients = (desk, phone, receiver)
    step = args.step_timeout
    try:
        for client in clients:
            client.connect(args.host, args.port)
        for client in clients:
            await wait(client.session, f"{client.label} session", step)

        info = await desk.plugin["xep_0030"].get_info(jid=desk.boundjid.domain, timeout=step)
        if CARBONS not in info["disco_info"]["features"]:
            raise Failure(f"{CARBONS} is not among the server's disco#info features")
        await desk.plugin["xep_0280"].enable(timeout=step)
        print(f"ok {args.mode} {desk.boundjid.full} enabled carbons")

        tag = uuid.uuid4().hex[:8]
        out = f"{tag} from the phone"
        phone.send_message(mto=receiver.boundjid.bare, mbody=out, mtype="chat")
        msg = await receiver.next(receiver.messages, "message", step)
        if msg["body"] != out:
            raise Failure(f"the receiver got {msg['body']!r}, sent {out!r}")
        carbon = await desk.next(desk.carbons, "sent carbon", step)
        check_carbon(
            carbon, "sent", f"{args.mode} sent carbon at the desk",
            out, phone.boundjid.full, receiver.boundjid.bare,
        )

        answer = f"{tag} answer"
        receiver.send_message(mto=phone.boundjid.full, mbody=answer, mtype="chat")
        msg = await phone.next(phone.messages, "answer", step)
        if msg["body"] != answer:
            raise Failure(f"the phone got {msg['body']!r}, sent {answer!r}")
        carbon = await desk.next(desk.carbons, "received carbon", step)
        check_carbon(
            carbon, "received", f"{args.mode} received carbon at the desk",
            answer, receiver.boundjid.full, phone.boundjid.full,
        )
        if not desk.messages.empty():
            raise Failure("the desk got a carbon's content as a plain message too")
        for client in clients:
            client.disconnect(wait=args.close_timeout)
        await asyncio.sleep(0.2)
    finally:
        for client in clients:
            client.cancel_connection_attempt()
            if client.transport is not None:
                client.abort()


if __name__ == "__main__":
    sys.exit(main(__doc__.split("\n\n")[0], run, "synced carbons", sys.argv[1:]))
