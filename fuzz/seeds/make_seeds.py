#!/usr/bin/env python3
"""Writes the committed seed corpora (fuzz/seeds/<target>/) from the flights the tests
send (crates/pipit-proto/tests, pipit-testkit's header/plain_auth/bind/pipelined_login).

    python3 fuzz/seeds/make_seeds.py

Each target's input format is described at the top of fuzz/fuzz_targets/<target>.rs.
"""
import base64
import hashlib
import hmac
import os

HERE = os.path.dirname(os.path.abspath(__file__))
SEP = b"\xff"

DOMAIN = "localhost"
STARTTLS = "<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>"
PRESENCE = "<presence/>"


def header(decl):
    return (("<?xml version='1.0'?>" if decl else "")
            + f"<stream:stream to='{DOMAIN}' xmlns='jabber:client' "
            "xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>")


def plain_auth(user, password):
    data = base64.b64encode(f"\0{user}\0{password}".encode()).decode()
    return f"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>{data}</auth>"


def bind(resource):
    return (f"<iq type='set' id='bind1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>"
            f"<resource>{resource}</resource></bind></iq>")


def message_to(to, body):
    return f"<message to='{to}' type='chat' id='m1'><body>{body}</body></message>"


def pipelined_login(user="alice", password="pencil", decl=True, to="alice@localhost"):
    return (header(True) + plain_auth(user, password) + header(decl) + bind("phone")
            + PRESENCE + message_to(to, "hello me"))


def sasl2_plain(extra="<bind xmlns='urn:xmpp:bind:0'><tag>phone</tag></bind>"):
    initial = base64.b64encode(b"\0alice\0pencil").decode()
    return (f"<authenticate xmlns='urn:xmpp:sasl:2' mechanism='PLAIN'>"
            f"<initial-response>{initial}</initial-response>"
            "<user-agent id='d4565fa7-4d72-4749-b3d3-740edbf87770'><software>pipit-test</software></user-agent>"
            f"{extra}</authenticate>")


SM_ENABLE = "<enable xmlns='urn:xmpp:sm:3' resume='true'/>"
CARBONS_ENABLE = "<iq type='set' id='c1'><enable xmlns='urn:xmpp:carbons:2'/></iq>"
STANZAS = [
    message_to("bob@localhost", "hi"),
    "<message to='bob@localhost/home' from='alice@localhost/desk' type='chat' id='m2'>"
    "<body>hi</body><private xmlns='urn:xmpp:carbons:2'/></message>",
    # A forged carbon (CVE-2017-5589).
    "<message to='bob@localhost' type='chat'><received xmlns='urn:xmpp:carbons:2'>"
    "<forwarded xmlns='urn:xmpp:forward:0'><message from='eve@localhost' to='bob@localhost'>"
    "<body>trust me</body></message></forwarded></received><body>x</body></message>",
    "<message type='error' id='e1' from='b@x'><error type='cancel'><service-unavailable "
    "xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>",
    "<message type='headline' to='localhost'><body>news</body><no-copy xmlns='urn:xmpp:hints'/></message>",
    "<iq type='get' id='p1' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>",
    "<iq type='get' id='d1' to='localhost'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>",
    CARBONS_ENABLE,
    "<presence><priority>5</priority><show>away</show></presence>",
    "<presence to='bob@localhost' type='subscribe'/>",
    "<message to='Ålice@LocalHost/Phöne' xml:lang='en'><body>&lt;&amp;&#x41;</body></message>",
    "<r xmlns='urn:xmpp:sm:3'/><a xmlns='urn:xmpp:sm:3' h='1'/>",
]


def write(target, name, data):
    path = os.path.join(HERE, target, name)
    with open(path, "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


def stream_parser():
    flights = {
        "header": header(True),
        "header_starttls_hello": (header(False) + STARTTLS).encode() + b"\x16\x03\x01\x00\xa5\x01\x00",
        "pipelined_login": pipelined_login(),
        "pipelined_login_nodecl": pipelined_login(decl=False),
        "starttls_injection": header(False) + STARTTLS + plain_auth("alice", "pencil") + header(False) + bind("evil"),
        "sasl2": header(True) + sasl2_plain(),
        "stanzas": header(False) + "".join(STANZAS) + "</stream:stream>",
        "bad_nesting": header(False) + "<message><body></message>",
        "deep": header(False) + "<a>" * 40 + "</a>" * 40,
        "bom_decl": "\ufeff<?xml version='1.0' encoding='UTF-8'?>" + header(False) + "<presence/>",
        "self_closing_stream": "<stream:stream xmlns:stream='http://etherx.jabber.org/streams'/>",
    }
    for i, (name, data) in enumerate(flights.items()):
        data = data.encode() if isinstance(data, str) else data
        # [n cut bytes][cuts][data]: whole (n=0), byte by byte, odd cuts; bit 3 = small limits.
        heads = [b"\x00", b"\x01\x00", b"\x03\x07\x01\x1d", b"\x0a\x05\x02"]
        write("stream_parser", name, heads[i % len(heads)] + data)


def server_negotiation():
    def seed(mode, chunk, ops):
        return bytes([mode, chunk]) + SEP.join(ops)

    p = lambda s: b"p" + s.encode()
    t = lambda s: b"t" + s.encode()
    seeds = {
        # RFC 6120 lockstep over STARTTLS, PLAIN.
        "lockstep_starttls": seed(0, 0, [p(header(True)), t(STARTTLS), p(""), p(header(True)),
                                         p(plain_auth("alice", "pencil")), p(header(False)),
                                         p(bind("phone")), p(PRESENCE + message_to("alice@localhost", "hi")), p("</stream:stream>")]),
        # Stunt buffering: ClientHello with <starttls/>, then the pipelined login.
        "stunt_pipelined": seed(0, 7, [t(header(False) + STARTTLS), p(""), p(pipelined_login())]),
        "pipelined_wrong_password": seed(0, 0, [t(header(False) + STARTTLS), p(""),
                                                p(pipelined_login(password="wrong")), p(plain_auth("alice", "pencil"))]),
        "starttls_injection": seed(0, 1, [t(header(False) + STARTTLS + plain_auth("alice", "pencil")
                                             + header(False) + bind("evil")), p("")]),
        "plaintext_auth_refused": seed(0, 3, [p(header(False) + plain_auth("alice", "pencil") + bind("x"))]),
        "scram_sasl1": seed(0, 0, [t(header(False) + STARTTLS), p(""), p(header(True)), b"s\x00", b"f",
                                   p(header(False) + bind("phone") + SM_ENABLE + "<r xmlns='urn:xmpp:sm:3'/>")]),
        "direct_sasl2_plain": seed(1, 0, [p(""), p(header(True) + sasl2_plain()), p(CARBONS_ENABLE), b"m", b"e"]),
        "direct_sasl2_scram_fast": seed(1, 0, [p(""), p(header(True)), b"s\x01", b"f", b"x"]),
        "direct_fast_unknown_token": seed(1, 0, [p(""), p(header(True)), b"h\x05"]),
        "direct_tls12_pipelined": seed(3, 5, [p(pipelined_login())]),
        "direct_sm_resume": seed(1, 0, [p(""), p(header(True) + sasl2_plain(
            "<bind xmlns='urn:xmpp:bind:0'><tag>phone</tag>" + SM_ENABLE + "</bind>")), b"m", b"o"]),
        "direct_resume_request": seed(1, 0, [p(header(True) + sasl2_plain(
            "<resume xmlns='urn:xmpp:sm:3' previd='abc' h='0'/>"))]),
        "refuse_conflict": seed(4, 0, [t(header(False) + STARTTLS), p(""), p(header(True)
                                        + plain_auth("bob", "pencil") + header(False) + bind("taken"))]),
        "garbage_in_tls": seed(1, 0, [p(""), b"w\x17\x03\x03\x00\x05hello", p(header(False))]),
    }
    for name, data in seeds.items():
        write("server_negotiation", name, data)


def scram_final(hash_name, password, client_first_bare, server_first, gs2=b"n,,", cb=b""):
    salt = b"fuzz-salt-123456"
    salted = hashlib.pbkdf2_hmac(hash_name, password.encode(), salt, 16)
    client_key = hmac.new(salted, b"Client Key", hash_name).digest()
    stored = hashlib.new(hash_name, client_key).digest()
    nonce = server_first.split(b",")[0]
    without_proof = b"c=" + base64.b64encode(gs2 + cb) + b"," + nonce
    auth = client_first_bare + b"," + server_first + b"," + without_proof
    sig = hmac.new(stored, auth, hash_name).digest()
    proof = bytes(a ^ b for a, b in zip(client_key, sig))
    return without_proof + b",p=" + base64.b64encode(proof)


def sasl_server():
    s = {}
    # PLAIN (mechanism index 4), initial response.
    s["plain"] = bytes([4, 1]) + b"\0alice\0pencil"
    s["plain_authzid"] = bytes([4, 1]) + b"alice@localhost\0alice\0pencil"
    s["plain_no_initial"] = bytes([4, 0]) + b"" + SEP + b"\0bob\0pencil"
    salt = base64.b64encode(b"fuzz-salt-123456")
    for idx, name in [(2, "sha256"), (3, "sha1")]:
        bare = b"n=alice,r=cnonce"
        server_first = b"r=cnoncesnonce,s=" + salt + b",i=16"
        final = scram_final(name, "pencil", bare, server_first)
        s[f"scram_{name}"] = bytes([idx, 1]) + b"n,," + bare + SEP + final
        s[f"scram_{name}_no_initial"] = bytes([idx, 0]) + b"n,," + bare + SEP + final
        s[f"scram_{name}_y_flag"] = bytes([idx, 3]) + b"y,," + bare + SEP + final
    # -PLUS with tls-exporter data (flags: initial, advertised, exporter).
    bare = b"n=alice,r=cnonce"
    gs2 = b"p=tls-exporter,,"
    server_first = b"r=cnoncesnonce,s=" + salt + b",i=16"
    s["scram_sha256_plus"] = bytes([0, 7]) + gs2 + bare + SEP + scram_final(
        "sha256", "pencil", bare, server_first, gs2, b"\x01" * 32)
    s["scram_escaped_user"] = bytes([2, 1]) + b"n,a=al=2Cice,n=al=3Dice,r=cn,ext=1"
    # HT (index 5.. : EXPR, ENDP, NONE).
    token = b"secret-token:pipit-fast-" + b"A" * 72
    for idx, cb, flags in [(5, b"\x01" * 32, 4), (6, b"\x02" * 32, 8), (7, b"", 0)]:
        label = b"Initiator" + cb
        s[f"ht_{idx}"] = bytes([idx, flags]) + b"alice\0" + hmac.new(token, label, "sha256").digest()
    for name, data in s.items():
        write("sasl_server", name, data)


def stanza_router():
    ops = [
        bytes([0x00, 0x08, 0x04, 0x05, 0x07, 0x06, 0x03]),          # bind, presence, carbons, deliver, unbind
        bytes([0x00, 0x01, 0x02, 0x10, 0x80, 0x84, 0xc7, 0x87]),    # conflicts, bob, deliveries
        bytes([0x00, 0x0a, 0x4c, 0x5d, 0x43, 0x83]),
        b"",
    ]
    for i, stanza in enumerate(STANZAS):
        write("stanza_router", f"stanza_{i:02}", ops[i % len(ops)] + SEP + stanza.encode())


def main():
    for target, make in [("stream_parser", stream_parser), ("server_negotiation", server_negotiation),
                         ("sasl_server", sasl_server), ("stanza_router", stanza_router)]:
        path = os.path.join(HERE, target)
        # Files not written here (inputs the fuzzer found, kept as seeds) stay.
        os.makedirs(path, exist_ok=True)
        make()


if __name__ == "__main__":
    main()
