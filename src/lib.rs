//! earshot: listens to what customers write and warns before a complaint wave
//! becomes a crisis.
//!
//! Data flows one way: source → tokenize → batch → inference thread
//! ([`model`]) → detector → alerts → sinks → ack. This crate is one package:
//! the library holds every stage, `src/main.rs` is a thin CLI.

pub mod alert;
pub mod config;
pub mod detect;
pub mod ingest;
pub mod metrics;
pub mod model;
pub mod pipeline;
pub mod replay;
pub mod server;
pub mod train;
pub mod types;
