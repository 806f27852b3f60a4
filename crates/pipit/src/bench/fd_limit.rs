//! The file-descriptor limit: every connection takes one in this process (four
//! through the `--rtt` relay: its listener, both ends of the relayed connection,
//! and the client's own), so a large run first raises the soft limit to the hard
//! one, and refuses clearly when even that is too low.

use anyhow::bail;
use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};

/// Descriptors kept aside for everything but the connections.
const SPARE: u64 = 64;

/// Raises the soft limit to the hard one and checks that `connections` fit.
pub fn ensure(connections: u64, relayed: bool) -> anyhow::Result<()> {
    let needed = connections * if relayed { 4 } else { 1 } + SPARE;
    let limit = getrlimit(Resource::Nofile);
    // `None` is unlimited.
    let mut soft = limit.current.unwrap_or(u64::MAX);
    let wanted = limit.maximum.unwrap_or(needed.max(soft));
    if soft < wanted {
        let raised = Rlimit {
            current: Some(wanted),
            maximum: limit.maximum,
        };
        match setrlimit(Resource::Nofile, raised) {
            Ok(()) => soft = wanted,
            Err(e) => {
                tracing::warn!("cannot raise the open-file limit from {soft} to {wanted}: {e}")
            }
        }
    }
    if needed > soft {
        bail!(
            "{connections} connections need about {needed} open files here, but this process may open only {soft} \
             (its hard limit): raise it, e.g. `ulimit -Hn {needed}` as root or in /etc/security/limits.conf, \
             or run fewer connections"
        );
    }
    Ok(())
}
