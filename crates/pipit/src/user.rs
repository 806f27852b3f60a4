//! `pipit user …`: account management straight on the store, so it works while
//! the server runs (SQLite in WAL mode, or PostgreSQL).

use anyhow::{Context as _, bail};
use clap::Subcommand;
use pipit_proto::jid::Jid;
use pipit_proto::sasl::StoredCredentials;
use pipit_server::Config;
use pipit_store::SharedStore;

use crate::ConfigArgs;

#[derive(Subcommand)]
pub enum UserCommand {
    /// Create an account.
    Add {
        /// The account, e.g. alice@localhost.
        jid: String,
        /// The password; prompted for when absent.
        #[arg(long)]
        password: Option<String>,
        #[command(flatten)]
        config: ConfigArgs,
    },
    /// Change an account's password.
    Passwd {
        /// The account.
        jid: String,
        /// The new password; prompted for when absent.
        #[arg(long)]
        password: Option<String>,
        #[command(flatten)]
        config: ConfigArgs,
    },
    /// Delete an account.
    Del {
        /// The account.
        jid: String,
        #[command(flatten)]
        config: ConfigArgs,
    },
    /// Create COUNT accounts PREFIX1@DOMAIN … PREFIXCOUNT@DOMAIN with one password, for
    /// load and soak tests, in the first served domain (--domain); accounts that
    /// exist already are left as they are.
    AddMany {
        /// The name before the number, e.g. `soak` for soak1@localhost, soak2@localhost…
        prefix: String,
        /// How many accounts.
        count: u32,
        /// Their password (each account still gets its own salt).
        #[arg(long)]
        password: String,
        #[command(flatten)]
        config: ConfigArgs,
    },
    /// List accounts, one JID a line.
    List {
        #[command(flatten)]
        config: ConfigArgs,
    },
}

pub async fn run(command: UserCommand) -> anyhow::Result<()> {
    match command {
        UserCommand::Add {
            jid,
            password,
            config,
        } => {
            let (config, jid, store) = open_account(&config, &jid).await?;
            let creds = credentials(&config, password)?;
            store
                .create_user(local(&jid), jid.domain(), &creds)
                .await
                .with_context(|| format!("cannot add {jid}"))?;
            println!("added {jid}");
        }
        UserCommand::Passwd {
            jid,
            password,
            config,
        } => {
            let (config, jid, store) = open_account(&config, &jid).await?;
            let creds = credentials(&config, password)?;
            store
                .set_credentials(local(&jid), jid.domain(), &creds)
                .await
                .with_context(|| format!("cannot change the password of {jid}"))?;
            println!("password changed for {jid}");
        }
        UserCommand::Del { jid, config } => {
            let (_, jid, store) = open_account(&config, &jid).await?;
            store
                .delete_user(local(&jid), jid.domain())
                .await
                .with_context(|| format!("cannot delete {jid}"))?;
            println!("deleted {jid}");
        }
        UserCommand::AddMany {
            prefix,
            count,
            password,
            config,
        } => {
            let config = config.resolve()?;
            let domain = config.domains[0].clone();
            // Checked once, on the first name, for a clear error before any work.
            account(&config, &format!("{prefix}1@{domain}"))?;
            let store = pipit_store::open(&config.database).await?;
            let (mut added, mut existing) = (0u32, 0u32);
            for n in 1..=count {
                let jid = account(&config, &format!("{prefix}{n}@{domain}"))?;
                let creds = credentials(&config, Some(password.clone()))?;
                match store.create_user(local(&jid), jid.domain(), &creds).await {
                    Ok(()) => added += 1,
                    Err(pipit_store::StoreError::UserExists) => existing += 1,
                    Err(e) => return Err(e).with_context(|| format!("cannot add {jid}")),
                }
            }
            println!(
                "added {added} accounts {prefix}1..{prefix}{count}@{domain} ({existing} existed)"
            );
        }
        UserCommand::List { config } => {
            let config = config.resolve()?;
            let store = pipit_store::open(&config.database).await?;
            for (local, domain) in store.list_users(None).await? {
                println!("{local}@{domain}");
            }
        }
    }
    Ok(())
}

/// The configuration, the checked account JID and the store it lives in.
async fn open_account(args: &ConfigArgs, jid: &str) -> anyhow::Result<(Config, Jid, SharedStore)> {
    let config = args.resolve()?;
    let jid = account(&config, jid)?;
    let store = pipit_store::open(&config.database).await?;
    Ok((config, jid, store))
}

/// Parses an account JID and checks its domain is one we serve.
fn account(config: &Config, jid: &str) -> anyhow::Result<Jid> {
    let parsed = Jid::parse(jid).with_context(|| format!("{jid:?} is not a valid JID"))?;
    if parsed.local().is_none() || parsed.is_full() {
        bail!("{jid:?} is not an account JID: write it as name@domain");
    }
    if !config.domains.iter().any(|d| d == parsed.domain()) {
        bail!(
            "domain {} is not served here (domains: {}); pass --domain {} or add it to the config file",
            parsed.domain(),
            config.domains.join(", "),
            parsed.domain()
        );
    }
    Ok(parsed)
}

fn local(jid: &Jid) -> &str {
    jid.local().unwrap_or_default()
}

/// Salted SCRAM keys for a password given or prompted for; the password itself is
/// never stored.
fn credentials(config: &Config, password: Option<String>) -> anyhow::Result<StoredCredentials> {
    let password = match password {
        Some(p) => p,
        None => {
            let first = rpassword::prompt_password("Password: ")
                .context("cannot read a password (give it with --password)")?;
            let again = rpassword::prompt_password("Again: ")?;
            if first != again {
                bail!("the passwords differ");
            }
            first
        }
    };
    if password.is_empty() {
        bail!("the password is empty");
    }
    let mut salt = [0u8; 16];
    getrandom::getrandom(&mut salt).context("the OS random number generator failed")?;
    StoredCredentials::derive(&password, &salt, config.scram_iterations)
        .map_err(|e| anyhow::anyhow!("unusable password: {e}"))
}
