//! earshot: listens to what customers write and warns before a complaint wave
//! becomes a crisis.
//!
//! Data flows one way: source → tokenize → batch → inference thread
//! ([`model`]) → detector → alerts → sinks → ack. The workspace compiles the
//! boundaries: `earshot-core` (shared types, event time), `earshot-model`
//! (tokenizer, encoders, heads; synchronous, no async runtime),
//! `earshot-detect` (pure, event time; no I/O), `earshot-alert` (lifecycle,
//! outbox, delivery) and this crate, which holds the I/O edges: configuration,
//! Kafka and file sources, the pipeline, HTTP, metrics and the CLI
//! (`src/main.rs`). See ARCHITECTURE.md.

pub use earshot_alert as alert;
pub use earshot_core::types;
pub use earshot_detect as detect;
pub use earshot_model as model;

pub mod config;
pub mod ingest;
pub mod metrics;
pub mod pipeline;
pub mod replay;
pub mod server;
