#!/usr/bin/env python3
"""Interop check: slixmpp's XEP-0198 stream management against Pipit.

    slixmpp_sm.py --host 127.0.0.1 --port 5222 --mode starttls|direct \\
        --cafile DATA_DIR/tls/selfsigned-cert.pem \\
        --sender bob@localhost --sender-password PW \\
        --receiver alice@localhost --receiver-password PW [--debug]

The receiver logs in with slixmpp's xep_0198 plugin (it enables stream management
with resumption after binding); the sender logs in without it. The sender sends three
chat messages to the receiver's full JID; the receiver gets them. Then the receiver's
TCP connection is cut without closing the stream, the sender sends two more while it
is away, and the receiver reconnects: slixmpp resumes the session (XEP-0198 section
5) and must get exactly the two it missed, once each, on the same full JID; one more
message afterwards arrives too. Both then close their streams.

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

class Client(slixmpp.ClientXMPP):
    """A ClientXMPP whose events become futures and a queue of message bodies."""

    def __init__(self, jid: str, password: str, args: argparse.Namespace, sm: bool) -> None:
        super().__init__(jid, password)
        self.label = jid
        self.register_plugin("xep_0199")
        if sm:
            self.register_plugin("xep_0198")
        configure_tls(self, args)
        loop = asyncio.get_running_loop()
        self.session = loop.create_future()
        self.enabled = loop.create_future()
        self.resumed = loop.create_future()
        self.bodies: asyncio.Queue = asyncio.Queue()
        self.add_event_handler("session_start", self._on_session_start)
        self.add_event_handler("sm_enabled", lambda _e: _settle(self.enabled))
        self.add_event_handler("session_resumed", lambda _e: _settle(self.resumed))
        self.add_event_handler("message", self._on_message)
        for event, why in [
            ("connection_failed", "cannot connect"),
            ("failed_all_auth", "SASL failed"),
            ("stream_error", "stream error from the server"),
        ]:
            self.add_event_handler(event, self._failer(why))

    def _failer(self, why: str):
        def handler(detail=None) -> None:
            error = Failure(f"{self.label}: {why}: {detail}")
            for future in (self.session, self.enabled, self.resumed):
                if not future.done():
                    future.set_exception(error)

        return handler

    async def _on_session_start(self, _event) -> None:
        self.send_presence()
        await self.plugin["xep_0199"].ping(jid=self.boundjid.domain, timeout=10)
        _settle(self.session)

    def _on_message(self, msg) -> None:
        if msg["type"] == "chat" and msg["body"]:
            self.bodies.put_nowait(msg["body"])

    async def take(self, n: int, timeout: float) -> list[str]:
        try:
            return [await asyncio.wait_for(self.bodies.get(), timeout) for _ in range(n)]
        except asyncio.TimeoutError:
            raise Failure(f"{self.label}: fewer than {n} messages within {timeout} s") from None


def _settle(future: asyncio.Future) -> None:
    if not future.done():
        future.set_result(None)


async def wait(future: asyncio.Future, what: str, timeout: float) -> None:
    try:
        await asyncio.wait_for(asyncio.shield(future), timeout)
    except asyncio.TimeoutError:
        raise Failure(f"no {what} within {timeout} s") from None


async def run(args: argparse.Namespace) -> None:
    sender = Client(args.sender, args.sender_password, args, sm=False)
    receiver = Client(args.receiver + "/sm", args.receiver_password, args, sm=True)
    step = args.step_timeout
    try:
        for client in (sender, receiver):
            client.connect(args.host, args.port)
        await wait(sender.session, "sender session", step)
        await wait(receiver.session, "receiver session", step)
        await wait(receiver.enabled, "<enabled/>", step)
        sm = receiver.plugin["xep_0198"]
        if not sm.sm_id:
            raise Failure("stream management was enabled without resumption")
        print(f"ok {args.mode} stream management enabled, resumable")

        tag = uuid.uuid4().hex[:8]
        to = receiver.boundjid.full
        first = [f"{tag} before {n}" for n in range(1, 4)]
        for body in first:
            sender.send_message(mto=to, mbody=body, mtype="chat")
        got = await receiver.take(3, step)
        if got != first:
            raise Failure(f"got {got}, sent {first}")
        print(f"ok {args.mode} three messages arrived")

        # The connection dies; the stream is left unfinished (XEP-0198 section 7).
        receiver.transport.abort()
        await asyncio.sleep(0.5)
        missed = [f"{tag} missed {n}" for n in range(1, 3)]
        for body in missed:
            sender.send_message(mto=to, mbody=body, mtype="chat")
        await sender.plugin["xep_0199"].ping(jid=sender.boundjid.domain, timeout=step)

        receiver.connect(args.host, args.port)
        await wait(receiver.resumed, "<resumed/>", step)
        if receiver.boundjid.full != to:
            raise Failure(f"resumed as {receiver.boundjid.full}, was {to}")
        got = await receiver.take(2, step)
        if got != missed:
            raise Failure(f"after resumption got {got}, expected {missed}")
        after = f"{tag} after"
        sender.send_message(mto=to, mbody=after, mtype="chat")
        got = await receiver.take(1, step)
        if got != [after]:
            raise Failure(f"got {got} (duplicates?), expected {[after]}")
        print(f"ok {args.mode} resumed; the two missed messages arrived once each")
        for client in (sender, receiver):
            client.disconnect(wait=args.close_timeout)
        await asyncio.sleep(0.2)
    finally:
        for client in (sender, receiver):
            client.cancel_connection_attempt()
            if client.transport is not None:
                client.abort()


if __name__ == "__main__":
    sys.exit(main(__doc__.split("\n\n")[0], run, "resumed a stream", sys.argv[1:]))
