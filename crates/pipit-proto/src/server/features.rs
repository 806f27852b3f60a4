//! The `<stream:features/>` the server offers at each stage of negotiation.

use crate::sasl::{ChannelBindingType, Mechanism};
use crate::server::config::ConflictPolicy;
use crate::xml::{Element, ns};

/// Our namespace for the resource policy announced inside the bind feature:
/// `<resource-policy xmlns='urn:x-pipit:bind:0' conflict='replace|refuse|rename'/>`.
/// A pipelining client reads it before it binds and so knows a priori what a
/// conflicting resource will do (founding mail; DESIGN.md rule 6).
pub const BIND_POLICY_NS: &str = "urn:x-pipit:bind:0";

/// What the features depend on.
pub(crate) enum Stage<'a> {
    /// Before TLS on the STARTTLS port: only `<starttls/>`, and it is required.
    PreTls,
    /// TLS up, not authenticated: SASL mechanisms and channel-binding types.
    Auth {
        channel_bindings: &'a [ChannelBindingType],
        /// FAST is taken in TLS 1.3 early data (XEP-0484 §3.1 `tls-0rtt`).
        zero_rtt: bool,
    },
    /// Authenticated: resource binding, and the legacy session feature.
    Bind { policy: ConflictPolicy },
}

/// The mechanisms offered: every SCRAM and PLAIN, and the -PLUS variants only where
/// a channel-binding type is available (RFC 5802 §6).
pub(crate) fn offered_mechanisms(channel_bindings: &[ChannelBindingType]) -> Vec<Mechanism> {
    Mechanism::ALL
        .into_iter()
        .filter(|m| !m.is_plus() || !channel_bindings.is_empty())
        .collect()
}

/// XEP-0509 §3.3: an opaque config version, a hash of the features as rendered
/// (without the version itself). Any change to what is offered changes it, so a
/// client that pipelined against stale features is refused and retries.
pub(crate) fn config_version(features: &Element) -> String {
    use base64::Engine;
    use sha2::Digest;
    let digest = sha2::Sha256::digest(features.to_bytes(ns::STREAM));
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&digest[..12])
}

/// Builds the features element for `stage`.
pub(crate) fn features(stage: Stage<'_>) -> Element {
    let mut features = Element::new("features", ns::STREAM);
    match stage {
        Stage::PreTls => {
            // RFC 6120 §5.3.1: TLS is mandatory-to-negotiate here.
            features.append_child(
                Element::new("starttls", ns::TLS).with_child(Element::new("required", ns::TLS)),
            );
        }
        Stage::Auth {
            channel_bindings,
            zero_rtt,
        } => {
            let mut mechanisms = Element::new("mechanisms", ns::SASL);
            for mech in offered_mechanisms(channel_bindings) {
                mechanisms.append_child(Element::new("mechanism", ns::SASL).with_text(mech.name()));
            }
            features.append_child(mechanisms);
            // XEP-0388 §2.1: the same mechanisms through SASL2, with Bind2 inline
            // (XEP-0386 §2), so a client can authenticate and bind in one flight.
            let mut authentication = Element::new("authentication", ns::SASL2);
            for mech in offered_mechanisms(channel_bindings) {
                authentication
                    .append_child(Element::new("mechanism", ns::SASL2).with_text(mech.name()));
            }
            // XEP-0484 §3.1: FAST tokens inside SASL2.
            authentication.append_child(
                Element::new("inline", ns::SASL2)
                    .with_child(
                        Element::new("bind", ns::BIND2).with_child(
                            // XEP-0386 §2: stream management and carbons may be
                            // enabled inline.
                            Element::new("inline", ns::BIND2)
                                .with_child(
                                    Element::new("feature", ns::BIND2).with_attr("var", ns::SM),
                                )
                                .with_child(
                                    Element::new("feature", ns::BIND2)
                                        .with_attr("var", ns::CARBONS),
                                ),
                        ),
                    )
                    .with_child(crate::server::fast::feature(channel_bindings, zero_rtt))
                    // XEP-0198 §5 inline in SASL2: a `<resume/>` may ride in
                    // `<authenticate/>`.
                    .with_child(Element::new("sm", ns::SM)),
            );
            // XEP-0480 §2.1: the SCRAM upgrade tasks this server can run.
            for upgrade in crate::server::scram_upgrade::features() {
                authentication.append_child(upgrade);
            }
            features.append_child(authentication);
            if !channel_bindings.is_empty() {
                // XEP-0440 §3: advertise the channel-binding types we support.
                let mut cb = Element::new("sasl-channel-binding", ns::SASL_CB);
                for t in channel_bindings {
                    cb.append_child(
                        Element::new("channel-binding", ns::SASL_CB).with_attr("type", t.name()),
                    );
                }
                features.append_child(cb);
            }
        }
        Stage::Bind { policy } => {
            features.append_child(
                Element::new("bind", ns::BIND).with_child(
                    Element::new("resource-policy", BIND_POLICY_NS)
                        .with_attr("conflict", policy.name()),
                ),
            );
            // XEP-0198 §2: stream management, once authenticated.
            features.append_child(crate::server::sm::feature());
            // RFC 6121 §2.6.1: roster versioning; a roster get with a current
            // `ver` is answered without the roster.
            features.append_child(Element::new("ver", ns::ROSTER_VER));
            // RFC 6121 did away with session establishment; old clients still look
            // for it, and `<optional/>` tells them they may skip it.
            features.append_child(
                Element::new("session", ns::SESSION)
                    .with_child(Element::new("optional", ns::SESSION)),
            );
        }
    }
    features
}
