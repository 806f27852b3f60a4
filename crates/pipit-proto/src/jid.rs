//! Jabber IDs (RFC 7622): `[localpart@]domainpart[/resourcepart]`.
//!
//! Parts are prepared with the stringprep profiles that deployed servers still use
//! (nodeprep, nameprep, resourceprep), which RFC 7622 §3 was designed to stay
//! compatible with for the characters people actually use.

use std::fmt;

/// Each part of a JID is at most 1023 bytes after preparation (RFC 7622 §3.2–3.4).
const MAX_PART_BYTES: usize = 1023;

/// Why a string is not a valid JID.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum JidError {
    /// The domainpart is empty.
    #[error("empty domainpart")]
    EmptyDomain,
    /// A `@` or `/` with nothing after or before it.
    #[error("empty localpart or resourcepart")]
    EmptyPart,
    /// A part is longer than 1023 bytes.
    #[error("a JID part exceeds 1023 bytes")]
    TooLong,
    /// A part holds characters its profile forbids.
    #[error("forbidden characters in the {0}")]
    Forbidden(&'static str),
}

/// A prepared JID. Comparison is on the prepared form.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Jid {
    local: Option<String>,
    domain: String,
    resource: Option<String>,
}

impl Jid {
    /// Parses and prepares a JID (RFC 7622 §3.1: split at the first `/`, then the `@`).
    pub fn parse(s: &str) -> Result<Self, JidError> {
        let (rest, resource) = match s.split_once('/') {
            Some((rest, res)) => (rest, Some(res)),
            None => (s, None),
        };
        let (local, domain) = match rest.split_once('@') {
            Some((local, domain)) => (Some(local), domain),
            None => (None, rest),
        };
        let domain = prep_domain(domain)?;
        let local = local.map(prep_local).transpose()?;
        let resource = resource.map(prep_resource).transpose()?;
        Ok(Jid {
            local,
            domain,
            resource,
        })
    }

    /// A bare account JID from already prepared or to-be-prepared parts.
    pub fn bare(local: &str, domain: &str) -> Result<Self, JidError> {
        Ok(Jid {
            local: Some(prep_local(local)?),
            domain: prep_domain(domain)?,
            resource: None,
        })
    }

    /// A JID of a domain alone (a server).
    pub fn domain_only(domain: &str) -> Result<Self, JidError> {
        Ok(Jid {
            local: None,
            domain: prep_domain(domain)?,
            resource: None,
        })
    }

    /// The same JID with `resource`, prepared.
    pub fn with_resource(&self, resource: &str) -> Result<Self, JidError> {
        Ok(Jid {
            resource: Some(prep_resource(resource)?),
            ..self.to_bare()
        })
    }

    /// The localpart, if any.
    pub fn local(&self) -> Option<&str> {
        self.local.as_deref()
    }

    /// The domainpart.
    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// The resourcepart, if any.
    pub fn resource(&self) -> Option<&str> {
        self.resource.as_deref()
    }

    /// Whether this JID has a resourcepart.
    pub fn is_full(&self) -> bool {
        self.resource.is_some()
    }

    /// This JID without its resourcepart.
    pub fn to_bare(&self) -> Jid {
        Jid {
            local: self.local.clone(),
            domain: self.domain.clone(),
            resource: None,
        }
    }
}

impl fmt::Display for Jid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(local) = &self.local {
            write!(f, "{local}@")?;
        }
        f.write_str(&self.domain)?;
        if let Some(resource) = &self.resource {
            write!(f, "/{resource}")?;
        }
        Ok(())
    }
}

impl std::str::FromStr for Jid {
    type Err = JidError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Jid::parse(s)
    }
}

fn check_len(part: &str) -> Result<(), JidError> {
    match part.len() {
        0 => Err(JidError::EmptyPart),
        n if n > MAX_PART_BYTES => Err(JidError::TooLong),
        _ => Ok(()),
    }
}

/// Prepares a localpart: nodeprep, which also forbids `"&'/:<>@` (RFC 7622 §3.3.1).
pub fn prep_local(local: &str) -> Result<String, JidError> {
    check_len(local)?;
    let prepped = stringprep::nodeprep(local).map_err(|_| JidError::Forbidden("localpart"))?;
    check_len(&prepped)?;
    Ok(prepped.into_owned())
}

/// Prepares a domainpart: a trailing dot is dropped and the name is nameprep'd and
/// lowercased (RFC 7622 §3.2).
pub fn prep_domain(domain: &str) -> Result<String, JidError> {
    let domain = domain.strip_suffix('.').unwrap_or(domain);
    if domain.is_empty() {
        return Err(JidError::EmptyDomain);
    }
    check_len(domain)?;
    let prepped = stringprep::nameprep(domain).map_err(|_| JidError::Forbidden("domainpart"))?;
    let forbidden = |c: char| c.is_whitespace() || "@/\"&'<>:\\".contains(c);
    // Only one trailing dot is dropped: another would leave an empty label, and the
    // JID would print as a string that parses to a different domain.
    if prepped.chars().any(forbidden)
        || prepped.starts_with('.')
        || prepped.ends_with('.')
        || prepped.contains("..")
    {
        return Err(JidError::Forbidden("domainpart"));
    }
    check_len(&prepped)?;
    Ok(prepped.to_lowercase())
}

/// Prepares a resourcepart with resourceprep (RFC 7622 §3.4).
pub fn prep_resource(resource: &str) -> Result<String, JidError> {
    check_len(resource)?;
    let prepped =
        stringprep::resourceprep(resource).map_err(|_| JidError::Forbidden("resourcepart"))?;
    check_len(&prepped)?;
    Ok(prepped.into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by the `stanza_router` fuzz target: `localh8..` dropped one dot and kept
    /// `localh8.`, which printed and parsed again became `localh8`.
    #[test]
    fn two_trailing_dots_are_refused() {
        let input: &[u8] = b"b0b@localh8..";
        let input = std::str::from_utf8(input).unwrap();
        assert_eq!(Jid::parse(input), Err(JidError::Forbidden("domainpart")));
        assert_eq!(Jid::parse("b0b@localh8.").unwrap().domain(), "localh8");
        for s in ["a@x.", "x./r", "a@x.y."] {
            let jid = Jid::parse(s).unwrap();
            assert_eq!(Jid::parse(&jid.to_string()), Ok(jid));
        }
    }

    #[test]
    fn parses_all_forms() {
        let full = Jid::parse("Alice@Example.COM/Phone").unwrap();
        assert_eq!(full.local(), Some("alice"));
        assert_eq!(full.domain(), "example.com");
        assert_eq!(full.resource(), Some("Phone"));
        assert_eq!(full.to_string(), "alice@example.com/Phone");
        assert_eq!(full.to_bare().to_string(), "alice@example.com");
        assert_eq!(Jid::parse("example.com").unwrap().local(), None);
        assert_eq!(
            Jid::parse("example.com/a/b").unwrap().resource(),
            Some("a/b")
        );
    }

    #[test]
    fn rejects_malformed() {
        assert_eq!(Jid::parse(""), Err(JidError::EmptyDomain));
        assert_eq!(Jid::parse("@example.com"), Err(JidError::EmptyPart));
        assert_eq!(Jid::parse("a@example.com/"), Err(JidError::EmptyPart));
        assert!(Jid::parse("a b@example.com").is_err());
        assert!(Jid::parse("a@exa mple.com").is_err());
        assert!(Jid::parse(&format!("{}@example.com", "a".repeat(1024))).is_err());
        assert_eq!(
            Jid::parse("a@b@example.com"),
            Err(JidError::Forbidden("domainpart"))
        );
    }

    #[test]
    fn trailing_dot_is_dropped() {
        assert_eq!(
            Jid::parse("a@example.com.").unwrap(),
            Jid::parse("a@example.com").unwrap()
        );
    }
}
