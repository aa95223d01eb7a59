//! Integration tests, one binary (ripgrep style). Modules share `util`.
//!
//! Real-model tests need `bash scripts/setup.sh` (or the test command in the
//! README, which runs it) so that `models/` holds the verified weights.

mod kafka_util;
mod util;

mod adapter;
mod alerts;
mod alerts_restart;
mod broker;
mod classify_cli;
mod detect;
#[path = "detect_bank.rs"]
mod detect_bank;
mod engine;
mod engine_kafka;
mod engine_resilience;
mod golden;
mod heads;
mod incident_pages;
mod observability;
mod replay;
