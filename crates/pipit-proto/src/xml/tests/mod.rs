//! Parser tests that span modules: transcripts fed at every split point, errors, limits,
//! round trips and performance.

mod errors;
mod limits;
mod namespaces;
mod perf;
mod roundtrip;
mod support;
mod transcripts;
