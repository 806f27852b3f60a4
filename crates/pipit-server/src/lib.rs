//! The Pipit XMPP server: tokio listeners and sessions that drive the sans-IO core
//! in `pipit-proto`, a session router, and the IM rules of RFC 6121.
//!
//! ```no_run
//! # async fn demo() -> Result<(), pipit_server::ServerError> {
//! use pipit_server::{Config, Server, Settings};
//! let server = Server::bind(Config::resolve(Settings::default())?).await?;
//! println!("c2s on {}", server.c2s_addr());
//! server.run(std::future::pending()).await;
//! # Ok(()) }
//! ```

mod archive;
mod carbons;
pub mod config;
mod error;
mod fast;
mod im;
pub mod limits;
mod mam;
mod messages;
mod offline;
mod presence;
pub mod resumption;
mod roster;
pub mod router;
mod server;
mod session;
pub mod sni;
pub mod throttle;
pub mod tls;

pub use config::{Config, Settings};
pub use error::ServerError;
pub use server::{Context, Reloader, Server};
