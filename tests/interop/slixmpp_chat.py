#!/usr/bin/env python3
"""Interop check: two slixmpp clients log in to Pipit and exchange one chat message.

    slixmpp_chat.py --host 127.0.0.1 --port 5222 --mode starttls|direct \\
        --cafile DATA_DIR/tls/selfsigned-cert.pem \\
        --sender alice@localhost --sender-password PW \\
        --receiver bob@localhost --receiver-password PW [--debug]

Both clients log in (STARTTLS or XEP-0368 Direct TLS, certificate verified against
--cafile, SASL as slixmpp chooses) and send initial presence; then the sender sends a
chat message with a unique body to the receiver's bare JID, and the receiver checks
the body and that it comes from the sender's full JID (RFC 6120 section 8.1.2.1: the
server stamps the full JID). Both then close their streams and expect the server to
close its own (RFC 6120 section 4.4).

Prints one `ok ...` line per client (TLS version, ALPN, SASL mechanism) and exits 0
on success; prints `FAIL: ...` and exits 1 on failure, 3 on the hard timeout.
--debug logs slixmpp's SEND/RECV lines (the bytes on the wire) to stderr.

Run it from the repository's venv (scripts/test makes it); crates/pipit/tests/interop.rs
drives it against a real `pipit serve`.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import ssl
import sys
import uuid

import slixmpp

from harness import ALPN, Failure, configure_tls, main

log = logging.getLogger("slixmpp_chat")

class Client(slixmpp.ClientXMPP):
    """A ClientXMPP that turns its events into futures the check can await."""

    def __init__(self, jid: str, password: str, args: argparse.Namespace) -> None:
        super().__init__(jid, password)
        # `jid` is a bare JID, so the server assigns the resource at bind.
        self.label = jid
        self.mode = args.mode
        self.register_plugin("xep_0199")  # ping, used as an ordering barrier below

        configure_tls(self, args)

        loop = asyncio.get_running_loop()
        self.session = loop.create_future()
        self.ended = loop.create_future()
        self.messages: asyncio.Queue = asyncio.Queue()
        self.mechanism: str | None = None
        self.sasl_failures: list[str] = []

        self.add_event_handler("session_start", self._on_session_start)
        self.add_event_handler("auth_success", self._on_auth_success)
        self.add_event_handler("failed_auth", self._on_failed_auth)
        self.add_event_handler("message", self._on_message)
        self.add_event_handler("disconnected", self._on_disconnected)
        for event, why in [
            ("connection_failed", "cannot connect"),
            ("ssl_invalid_chain", "the server certificate does not verify"),
            ("failed_all_auth", "SASL failed with every mechanism offered"),
            ("no_auth", "no SASL mechanism slixmpp can use was offered"),
            ("stream_error", "stream error from the server"),
        ]:
            self.add_event_handler(event, self._failer(why))

    def _fail(self, why: str) -> None:
        if not self.session.done():
            self.session.set_exception(Failure(f"{self.label}: {why}"))

    def _failer(self, why: str):
        def handler(detail=None) -> None:
            if why.startswith("SASL") and self.sasl_failures:
                detail = "; ".join(self.sasl_failures)
            self._fail(f"{why}: {detail}" if detail else why)

        return handler

    def _on_auth_success(self, _stanza) -> None:
        mech = self.plugin["feature_mechanisms"].mech
        self.mechanism = mech.name if mech is not None else None

    def _on_failed_auth(self, failure) -> None:
        mech = self.plugin["feature_mechanisms"].mech
        text = f" ({failure['text']})" if failure["text"] else ""
        self.sasl_failures.append(f"{mech.name if mech else '?'}: {failure['condition']}{text}")

    async def _on_session_start(self, _event) -> None:
        try:
            self.send_presence()
            # The server handles one stream's stanzas in order, so once it answers a
            # ping sent after the presence, the presence has taken effect and a
            # message to our bare JID has an available resource to go to.
            await self.plugin["xep_0199"].ping(jid=self.boundjid.domain, timeout=10)
        except Exception as e:  # noqa: BLE001 - any error fails the check, with its text
            self._fail(f"ping after initial presence failed: {e!r}")
            return
        if not self.session.done():
            self.session.set_result(None)

    def _on_message(self, msg) -> None:
        if msg["type"] in ("chat", "normal") and msg["body"]:
            self.messages.put_nowait(msg)

    def _on_disconnected(self, reason) -> None:
        self._fail(f"disconnected before the session started: {reason}")
        if not self.ended.done():
            self.ended.set_result(reason)

    def check_transport(self) -> str:
        """Checks the stream runs over the TLS we asked for; returns a summary."""
        tls = self.socket
        if not isinstance(tls, (ssl.SSLObject, ssl.SSLSocket)):
            raise Failure(f"{self.label}: logged in without TLS")
        if self.mode == "starttls" and "starttls" not in self.features:
            raise Failure(f"{self.label}: TLS did not come from STARTTLS")
        alpn = tls.selected_alpn_protocol()
        if self.mode == "direct" and alpn != ALPN:
            raise Failure(f"{self.label}: server selected ALPN {alpn!r}, expected {ALPN!r}")
        return f"tls={tls.version()} alpn={alpn} sasl={self.mechanism}"

    async def login(self, host: str, port: int, timeout: float) -> None:
        self.connect(host, port)
        try:
            await asyncio.wait_for(self.session, timeout)
        except asyncio.TimeoutError:
            raise Failure(f"{self.label}: no session within {timeout} s of connecting") from None

    async def logout(self, timeout: float) -> None:
        if self.ended.done():
            raise Failure(f"{self.label}: the server closed the connection early")
        self.disconnect(wait=timeout)
        reason = await asyncio.wait_for(asyncio.shield(self.ended), timeout + 1)
        # slixmpp gives this reason only when it parsed the server's </stream:stream>;
        # after `timeout` s without one it aborts the connection with no reason.
        if reason != "End of stream":
            raise Failure(
                f"{self.label}: the server did not answer our </stream:stream> with its own "
                f"within {timeout} s (RFC 6120 section 4.4); disconnect reason: {reason!r}"
            )


async def run(args: argparse.Namespace) -> None:
    sender = Client(args.sender, args.sender_password, args)
    receiver = Client(args.receiver, args.receiver_password, args)
    try:
        await asyncio.gather(
            receiver.login(args.host, args.port, args.step_timeout),
            sender.login(args.host, args.port, args.step_timeout),
        )
        for client in (sender, receiver):
            print(f"ok {args.mode} login {client.boundjid.full}: {client.check_transport()}")

        body = f"pipit interop {uuid.uuid4()}"
        to = receiver.boundjid.bare
        sender.send_message(mto=to, mbody=body, mtype="chat")
        try:
            msg = await asyncio.wait_for(receiver.messages.get(), args.step_timeout)
        except asyncio.TimeoutError:
            raise Failure(
                f"{receiver.boundjid.full} got no message within {args.step_timeout} s "
                f"of {sender.boundjid.full} sending one to {to}"
            ) from None
        if msg["body"] != body:
            raise Failure(f"wrong body: got {msg['body']!r}, sent {body!r}")
        if str(msg["from"]) != sender.boundjid.full:
            raise Failure(
                f"wrong from: got {str(msg['from'])!r}, expected the sender's full JID "
                f"{sender.boundjid.full!r}"
            )
        if msg["type"] != "chat":
            raise Failure(f"wrong type: got {msg['type']!r}, sent 'chat'")
        print(f"ok {args.mode} message {sender.boundjid.full} -> {to} arrived at {receiver.boundjid.full}")

        await asyncio.gather(sender.logout(args.close_timeout), receiver.logout(args.close_timeout))
        print(f"ok {args.mode} both streams closed")
    finally:
        for client in (sender, receiver):
            client.cancel_connection_attempt()  # no reconnect after a failed connect
            if client.transport is not None:
                client.abort()


if __name__ == "__main__":
    sys.exit(main(__doc__.split("\n\n")[0], run, "chatted", sys.argv[1:]))
