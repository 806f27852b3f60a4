//! Namespace names used by the XMPP core (RFC 6120, RFC 6121) and common extensions.

/// Stream namespace of `<stream:stream>` (RFC 6120 §4.8.1).
pub const STREAM: &str = "http://etherx.jabber.org/streams";
/// Content namespace of client-to-server streams (RFC 6120 §4.8.2).
pub const CLIENT: &str = "jabber:client";
/// Content namespace of server-to-server streams (RFC 6120 §4.8.2).
pub const SERVER: &str = "jabber:server";
/// STARTTLS negotiation (RFC 6120 §5.4).
pub const TLS: &str = "urn:ietf:params:xml:ns:xmpp-tls";
/// SASL negotiation (RFC 6120 §6.4).
pub const SASL: &str = "urn:ietf:params:xml:ns:xmpp-sasl";
/// Resource binding (RFC 6120 §7).
pub const BIND: &str = "urn:ietf:params:xml:ns:xmpp-bind";
/// Legacy session establishment (RFC 3921 §3, kept optional by RFC 6121 Appendix E).
pub const SESSION: &str = "urn:ietf:params:xml:ns:xmpp-session";
/// Stream error conditions (RFC 6120 §4.9.3).
pub const STREAM_ERRORS: &str = "urn:ietf:params:xml:ns:xmpp-streams";
/// Stanza error conditions (RFC 6120 §8.3.3).
pub const STANZA_ERRORS: &str = "urn:ietf:params:xml:ns:xmpp-stanzas";
/// The namespace bound to the predefined `xml` prefix (Namespaces in XML 1.0 §3).
pub const XML: &str = "http://www.w3.org/XML/1998/namespace";
/// XMPP Ping (XEP-0199).
pub const PING: &str = "urn:xmpp:ping";
/// Service Discovery info (XEP-0030).
pub const DISCO_INFO: &str = "http://jabber.org/protocol/disco#info";
/// SASL channel-binding type capability (XEP-0440).
pub const SASL_CB: &str = "urn:xmpp:sasl-cb:0";

/// The namespace bound to the reserved `xmlns` prefix; never declarable (Namespaces in XML 1.0 §3).
pub(super) const XMLNS: &str = "http://www.w3.org/2000/xmlns/";
/// XEP-0388 Extensible SASL Profile (SASL2).
pub const SASL2: &str = "urn:xmpp:sasl:2";
/// XEP-0386 Bind 2.
pub const BIND2: &str = "urn:xmpp:bind:0";
/// XEP-0509 Initial Authentication Pipelining.
pub const IAP: &str = "urn:xmpp:iap:0";
/// XEP-0484 Fast Authentication Streamlining Tokens.
pub const FAST: &str = "urn:xmpp:fast:0";
/// XEP-0198 Stream Management.
pub const SM: &str = "urn:xmpp:sm:3";
/// XEP-0480 SASL Upgrade Tasks.
pub const SASL_UPGRADE: &str = "urn:xmpp:sasl:upgrade:0";
/// XEP-0480 §3 SCRAM upgrade task data.
pub const SCRAM_UPGRADE: &str = "urn:xmpp:scram-upgrade:0";
/// XEP-0280 Message Carbons.
pub const CARBONS: &str = "urn:xmpp:carbons:2";
/// XEP-0313 Message Archive Management.
pub const MAM: &str = "urn:xmpp:mam:2";
/// XEP-0359 Unique and Stable Stanza IDs.
pub const SID: &str = "urn:xmpp:sid:0";
/// XEP-0297 Stanza Forwarding.
pub const FORWARD: &str = "urn:xmpp:forward:0";
/// XEP-0203 Delayed Delivery.
pub const DELAY: &str = "urn:xmpp:delay";
/// XEP-0059 Result Set Management.
pub const RSM: &str = "http://jabber.org/protocol/rsm";
/// XEP-0004 Data Forms.
pub const DATA_FORMS: &str = "jabber:x:data";
/// XEP-0334 Message Processing Hints.
pub const HINTS: &str = "urn:xmpp:hints";
/// RFC 6121 §2 roster management.
pub const ROSTER: &str = "jabber:iq:roster";
/// RFC 6121 §2.6.1 roster versioning stream feature.
pub const ROSTER_VER: &str = "urn:xmpp:features:rosterver";
