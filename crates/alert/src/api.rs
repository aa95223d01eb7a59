//! What the HTTP server and the metrics exporter may ask of the alert stage,
//! without depending on how it is built: active alerts, silences, delivery
//! counters and outbox depth. The alert stage implements [`AlertApi`]; the
//! server holds an `Arc<dyn AlertApi>`.

use serde::{Deserialize, Serialize};

/// A silence: alerts whose labels match every matcher, with an event time in
/// `[starts_at, ends_at)`, are recorded but not delivered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Silence {
    /// Assigned on creation when empty.
    #[serde(default)]
    pub id: String,
    /// Exact label matches: `rule`, `severity`, and the key dimensions
    /// (`brand`, `product`, `region`, ...).
    pub matchers: std::collections::BTreeMap<String, String>,
    /// RFC 3339; empty means "now" when created through the API.
    #[serde(default)]
    pub starts_at: String,
    /// RFC 3339, required: silences always expire.
    pub ends_at: String,
    #[serde(default)]
    pub comment: String,
    #[serde(default)]
    pub created_by: String,
}

/// Counters of one delivery endpoint (cumulative since start).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct SinkStats {
    /// The endpoint's configured name (bounded: one per configured sink).
    pub sink: String,
    /// `alertmanager`, `alertmanager_webhook`, `slack`, `pagerduty`, `generic`, `kafka`.
    pub kind: String,
    pub delivered: u64,
    pub retries: u64,
    /// Attempts that failed (each retry that failed counts once).
    pub failures: u64,
    /// Messages given up on (non-retryable 4xx or retries exhausted).
    pub dropped: u64,
    /// Sum of backoff waits, seconds.
    pub backoff_seconds: f64,
    /// Outbox entries waiting for this sink.
    pub pending: u64,
}

/// Read/write access to the alert stage for the HTTP server and metrics.
pub trait AlertApi: Send + Sync {
    /// Alerts currently firing (silenced ones included, flagged), as JSON objects
    /// with at least `fingerprint`, `status`, `rule`, `severity`, `key`,
    /// `labels`, `starts_at`, `summary`, `silenced`.
    fn active(&self) -> Vec<serde_json::Value>;
    fn silences(&self) -> Vec<Silence>;
    /// Validates and stores a silence; returns it with its id. The error names the field.
    fn add_silence(&self, silence: Silence) -> Result<Silence, String>;
    /// Removes a silence; false if there was none with that id.
    fn expire_silence(&self, id: &str) -> bool;
    fn delivery(&self) -> Vec<SinkStats>;
    /// Outbox entries not yet delivered to every sink.
    fn outbox_depth(&self) -> u64;
}
