//! FAST (XEP-0484): the mechanisms offered inside SASL2, what an `<authenticate/>`
//! asks of FAST, and the `<token/>` the server issues.

use crate::sasl::{ChannelBindingType, HtMechanism};
use crate::xml::{Element, ns};

/// How long an issued token lives. XEP-0484 leaves it to the server; two weeks
/// keeps a daily-used client logging in without its password indefinitely (it
/// rotates the token at each login) and a lost device locked out soon.
pub const TOKEN_LIFETIME_SECS: u64 = 14 * 24 * 3600;

/// A stored token, as the driver hands it to the core for verification.
#[derive(Clone, PartialEq, Eq)]
pub struct FastTokenRecord {
    /// SHA-256 of the token string: the HMAC key (see `sasl::HtTokenKey`).
    pub key: [u8; 32],
    /// The HT mechanism it was issued for (XEP-0484 §3.4 binds it to that one).
    pub mechanism: String,
}

impl std::fmt::Debug for FastTokenRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FastTokenRecord")
            .field("mechanism", &self.mechanism)
            .finish_non_exhaustive()
    }
}

/// The HT mechanisms this connection can offer: `-NONE` always, and the
/// channel-bound ones whose binding data it has.
pub(crate) fn offered(channel_bindings: &[ChannelBindingType]) -> Vec<HtMechanism> {
    HtMechanism::ALL
        .into_iter()
        .filter(|m| {
            m.channel_binding_type()
                .is_none_or(|t| channel_bindings.contains(&t))
        })
        .collect()
}

/// Whether this TLS configuration takes early data, so FAST may ride in it: a bound
/// on its size, and stateful tickets (rustls accepts early data only on sessions
/// resumed from its session store, whose tickets are single-use, RFC 8446 §8.1).
pub(crate) fn zero_rtt(tls: &rustls::ServerConfig) -> bool {
    tls.max_early_data_size > 0 && !tls.ticketer.enabled()
}

/// XEP-0484 §3.1: `<fast/>` inside SASL2's `<inline/>`; `tls-0rtt='true'` when the
/// server takes a FAST authentication in TLS 1.3 early data.
pub(crate) fn feature(channel_bindings: &[ChannelBindingType], zero_rtt: bool) -> Element {
    let mut fast = Element::new("fast", ns::FAST);
    if zero_rtt {
        fast.set_attr("tls-0rtt", "true");
    }
    for mech in offered(channel_bindings) {
        fast.append_child(Element::new("mechanism", ns::FAST).with_text(mech.name()));
    }
    fast
}

/// What an `<authenticate/>` asks of FAST.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct FastRequest {
    /// `<request-token mechanism='…'/>` (XEP-0484 §3.2).
    pub request_token: Option<String>,
    /// `<fast count='…'/>` (§3.4), when the client authenticates with a token.
    pub count: Option<u64>,
    /// `<fast invalidate='true'/>` (§3.6): this token ends with this login.
    pub invalidate: bool,
}

impl FastRequest {
    /// Reads the FAST children of an `<authenticate/>`.
    pub fn parse(authenticate: &Element) -> FastRequest {
        let fast = authenticate.get_child("fast", ns::FAST);
        FastRequest {
            request_token: authenticate
                .get_child("request-token", ns::FAST)
                .and_then(|r| r.attr("mechanism"))
                .map(str::to_owned),
            count: fast
                .and_then(|f| f.attr("count"))
                .and_then(|c| c.parse().ok()),
            invalidate: fast
                .and_then(|f| f.attr("invalidate"))
                .is_some_and(|v| v == "true" || v == "1"),
        }
    }
}

/// XEP-0484 §3.3: the issued token, in `<success/>`.
pub(crate) fn token_element(token: &str, expires_at: u64) -> Element {
    Element::new("token", ns::FAST)
        .with_attr("expiry", xep82_datetime(expires_at))
        .with_attr("token", token)
}

/// A unix time as an XEP-0082 date-time in UTC, `2026-11-24T12:00:00Z`.
pub(crate) fn xep82_datetime(unix: u64) -> String {
    let days = unix / 86_400;
    let secs = unix % 86_400;
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    /// Expected values from Python's `datetime.fromtimestamp(t, timezone.utc)`.
    fn dates_are_xep82() {
        assert_eq!(xep82_datetime(0), "1970-01-01T00:00:00Z");
        assert_eq!(xep82_datetime(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(xep82_datetime(1_795_478_400), "2026-11-24T00:00:00Z");
        assert_eq!(xep82_datetime(4_102_444_799), "2099-12-31T23:59:59Z");
    }

    #[test]
    fn only_bindable_mechanisms_are_offered() {
        let names = |cb: &[ChannelBindingType]| -> Vec<_> {
            offered(cb).into_iter().map(HtMechanism::name).collect()
        };
        assert_eq!(names(&[]), ["HT-SHA-256-NONE"]);
        assert_eq!(
            names(&[
                ChannelBindingType::TlsExporter,
                ChannelBindingType::TlsServerEndPoint
            ])
            .len(),
            3
        );
    }

    #[test]
    fn zero_rtt_is_advertised_only_when_taken() {
        assert_eq!(feature(&[], true).attr("tls-0rtt"), Some("true"));
        assert_eq!(feature(&[], false).attr("tls-0rtt"), None);
    }

    #[test]
    fn requests_are_read() {
        let auth = Element::new("authenticate", ns::SASL2)
            .with_child(
                Element::new("request-token", ns::FAST).with_attr("mechanism", "HT-SHA-256-NONE"),
            )
            .with_child(
                Element::new("fast", ns::FAST)
                    .with_attr("count", "7")
                    .with_attr("invalidate", "true"),
            );
        let request = FastRequest::parse(&auth);
        assert_eq!(request.request_token.as_deref(), Some("HT-SHA-256-NONE"));
        assert_eq!(request.count, Some(7));
        assert!(request.invalidate);
    }
}
