//! `[alert]` and `[[alert.sinks]]`: the alert lifecycle (event time), the durable
//! outbox and the delivery endpoints. Validates into the alert crate's
//! [`AlertConfig`]; validation is pure, so a sink's secrets come out as
//! [`SecretRef`]s that [`super::secrets::resolve`] reads afterwards.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use super::secrets::{SecretRef, SecretSlot, SecretSource, SecretTarget};
use super::{dims, duration_ms, severity_rank, AlertConfig, ConfigError, SinkKind, SinkSpec, SinkUrl};

const MINUTE_MS: i64 = 60_000;

/// `[alert]`: alert lifecycle (event time), the durable outbox and delivery endpoints.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawAlert {
    /// Base URL of Grafana for the dashboard links in alert texts.
    pub grafana_url: String,
    /// One-shot kinds (slow_drift, review_bombing) resolve after this much
    /// event time without a new signal.
    pub resolve_after_minutes: u64,
    /// A firing alert is sent again after this much event time (0: never).
    pub repeat_interval_minutes: u64,
    /// Labels that group related alerts into one notification.
    pub group_by: Vec<String>,
    /// Correlate alerts that share events (or a nested key and events or
    /// terms) into one incident: one page per incident, plus updates as it
    /// spreads. `false`: one notification stream per rule and key.
    pub correlate: bool,
    /// Least event time between two update notifications of one incident.
    pub incident_update_minutes: u64,
    /// Share of a new alert's events already in an incident that makes it
    /// part of that incident (0 < x ≤ 1).
    pub correlate_min_overlap: f64,
    /// The durable outbox (redb); relative to the config file's directory.
    pub outbox_path: PathBuf,
    /// Outbox entries delivered to every sink (or given up on) are deleted
    /// this long after they were stored; also how long a re-derived change
    /// is recognised as already sent.
    pub outbox_retention_hours: u64,
    pub silences: Vec<crate::alert::api::Silence>,
    pub sinks: Vec<RawSink>,
}

impl Default for RawAlert {
    fn default() -> Self {
        Self {
            grafana_url: "http://localhost:3000".into(),
            resolve_after_minutes: 120,
            repeat_interval_minutes: 240,
            group_by: vec!["brand".into()],
            correlate: true,
            incident_update_minutes: 30,
            correlate_min_overlap: 0.2,
            outbox_path: PathBuf::from("earshot-data/outbox.redb"),
            outbox_retention_hours: 168,
            silences: Vec::new(),
            sinks: Vec::new(),
        }
    }
}

/// `[[alert.sinks]]`: one delivery endpoint. `name`, `kind` and one of `url`,
/// `url_env`, `url_file` are required; every other key defaults as in
/// `SinkTable`'s `Default`.
#[derive(Debug, Clone, Deserialize)]
#[serde(try_from = "SinkTable")]
pub struct RawSink {
    pub name: String,
    /// `alertmanager`, `alertmanager_webhook`, `slack`, `pagerduty` or `generic`.
    pub kind: String,
    /// The URL written in the file (None: from `url_env` or `url_file`).
    /// Webhook URLs often embed a credential: `Debug` shows scheme and host.
    pub url: Option<SinkUrl>,
    /// Environment variable holding the URL.
    pub url_env: Option<String>,
    /// File holding the URL.
    pub url_file: Option<PathBuf>,
    /// Environment variable holding the signing secret (generic).
    pub secret_env: Option<String>,
    /// File holding the signing secret (generic).
    pub secret_file: Option<PathBuf>,
    /// Environment variable holding the PagerDuty routing key.
    pub routing_key_env: Option<String>,
    /// File holding the PagerDuty routing key.
    pub routing_key_file: Option<PathBuf>,
    pub timeout_ms: u64,
    pub max_concurrency: usize,
    pub max_attempts: u32,
    pub max_retry_minutes: u64,
    pub backoff_initial_ms: u64,
    pub backoff_max_ms: u64,
    /// `info`, `warning` or `critical`: lower severities are not sent here.
    pub min_severity: String,
    /// Per-route cooldown: repeats closer than this (event time) are skipped
    /// for this endpoint; unset means every repeat.
    pub repeat_interval_minutes: Option<u64>,
    /// Alertmanager only: firing alerts are re-sent this often (wall clock)
    /// so Alertmanager does not resolve them on its own.
    pub resend_interval_secs: u64,
}

/// A `[[alert.sinks]]` table as written: [`RawSink`] with its required keys
/// still optional, so that the other keys can take their defaults from one
/// `Default` while a missing required key stays a parse error.
#[derive(Deserialize)]
#[serde(default, deny_unknown_fields)]
struct SinkTable {
    name: Option<String>,
    kind: Option<String>,
    url: Option<String>,
    url_env: Option<String>,
    url_file: Option<PathBuf>,
    secret_env: Option<String>,
    secret_file: Option<PathBuf>,
    routing_key_env: Option<String>,
    routing_key_file: Option<PathBuf>,
    timeout_ms: u64,
    max_concurrency: usize,
    max_attempts: u32,
    max_retry_minutes: u64,
    backoff_initial_ms: u64,
    backoff_max_ms: u64,
    min_severity: String,
    repeat_interval_minutes: Option<u64>,
    resend_interval_secs: u64,
}

impl Default for SinkTable {
    fn default() -> Self {
        Self {
            name: None,
            kind: None,
            url: None,
            url_env: None,
            url_file: None,
            secret_env: None,
            secret_file: None,
            routing_key_env: None,
            routing_key_file: None,
            timeout_ms: 10_000,
            max_concurrency: 4,
            max_attempts: 10_000,
            max_retry_minutes: 1440,
            backoff_initial_ms: 500,
            backoff_max_ms: 30_000,
            min_severity: "info".into(),
            repeat_interval_minutes: None,
            resend_interval_secs: 60,
        }
    }
}

impl TryFrom<SinkTable> for RawSink {
    type Error = String;

    fn try_from(t: SinkTable) -> Result<Self, String> {
        let missing = |key: &str| format!("missing field `{key}`");
        if t.url.is_none() && t.url_env.is_none() && t.url_file.is_none() {
            return Err("missing field `url` (or `url_env` / `url_file`)".into());
        }
        Ok(RawSink {
            name: t.name.ok_or_else(|| missing("name"))?,
            kind: t.kind.ok_or_else(|| missing("kind"))?,
            url: t.url.map(SinkUrl::new),
            url_env: t.url_env,
            url_file: t.url_file,
            secret_env: t.secret_env,
            secret_file: t.secret_file,
            routing_key_env: t.routing_key_env,
            routing_key_file: t.routing_key_file,
            timeout_ms: t.timeout_ms,
            max_concurrency: t.max_concurrency,
            max_attempts: t.max_attempts,
            max_retry_minutes: t.max_retry_minutes,
            backoff_initial_ms: t.backoff_initial_ms,
            backoff_max_ms: t.backoff_max_ms,
            min_severity: t.min_severity,
            repeat_interval_minutes: t.repeat_interval_minutes,
            resend_interval_secs: t.resend_interval_secs,
        })
    }
}

impl RawAlert {
    /// Checks the section and resolves the outbox path against `base`. Pure:
    /// every sink's `secret` and `routing_key` (and a `url` given by
    /// `url_env` / `url_file`) are left unset and returned as references for
    /// [`super::secrets::resolve`] to read.
    pub fn validate(self, base: &Path) -> Result<(AlertConfig, Vec<SecretRef>), ConfigError> {
        let inv = |field: &'static str, message: String| ConfigError::Invalid { field, message };
        if !(self.grafana_url.starts_with("http://") || self.grafana_url.starts_with("https://")) {
            return Err(inv(
                "alert.grafana_url",
                format!("`{}`: use an http:// or https:// URL", self.grafana_url),
            ));
        }
        if self.resolve_after_minutes == 0 {
            return Err(inv("alert.resolve_after_minutes", "must be at least 1".into()));
        }
        if self.outbox_retention_hours == 0 {
            return Err(inv("alert.outbox_retention_hours", "must be at least 1".into()));
        }
        let group_by = dims("alert.group_by", &self.group_by)?;
        if !(self.correlate_min_overlap > 0.0 && self.correlate_min_overlap <= 1.0) {
            return Err(inv(
                "alert.correlate_min_overlap",
                format!("{}: use a share in (0, 1], e.g. 0.2", self.correlate_min_overlap),
            ));
        }
        let correlate = crate::alert::incident::CorrelateConfig {
            enabled: self.correlate,
            min_overlap: self.correlate_min_overlap,
            update_interval: duration_ms("alert.incident_update_minutes", self.incident_update_minutes, MINUTE_MS)?,
            ..Default::default()
        };
        for s in &self.silences {
            crate::alert::silence::Matcher::parse(s).map_err(|m| inv("alert.silences", m))?;
        }
        let mut sinks = Vec::new();
        let mut secrets = Vec::new();
        let mut names = std::collections::BTreeSet::new();
        for r in self.sinks {
            let n = r.name.clone();
            if n.is_empty() || !names.insert(n.clone()) {
                return Err(inv(
                    "alert.sinks.name",
                    format!("`{n}`: every sink needs a unique, non-empty name"),
                ));
            }
            let kind = match r.kind.as_str() {
                "alertmanager" => SinkKind::Alertmanager,
                "alertmanager_webhook" => SinkKind::AlertmanagerWebhook,
                "slack" => SinkKind::Slack,
                "pagerduty" => SinkKind::PagerDuty,
                "generic" => SinkKind::Generic,
                other => {
                    return Err(inv(
                        "alert.sinks.kind",
                        format!(
                            "sink `{n}`: unknown kind `{other}`: use alertmanager, alertmanager_webhook, slack, pagerduty or generic"
                        ),
                    ))
                }
            };
            let file = |f: PathBuf| if f.is_absolute() { f } else { base.join(f) };
            let one_of = |field: &'static str, keys: &str, env: Option<String>, path: Option<PathBuf>| match (env, path)
            {
                (Some(_), Some(_)) => Err(inv(field, format!("sink `{n}`: set {keys}, not both"))),
                (Some(var), None) => Ok(Some(SecretSource::Env(var))),
                (None, Some(f)) => Ok(Some(SecretSource::File(file(f)))),
                (None, None) => Ok(None),
            };
            let url_source = one_of("alert.sinks.url_env", "url_env or url_file", r.url_env, r.url_file)?;
            let url = match (r.url, &url_source) {
                (Some(_), Some(_)) => {
                    return Err(inv(
                        "alert.sinks.url",
                        format!("sink `{n}`: set url, url_env or url_file, only one"),
                    ))
                }
                (Some(u), None) => {
                    check_url(&u, "alert.sinks.url", &n)?;
                    u
                }
                // Read and checked by secrets::resolve.
                _ => SinkUrl::new(""),
            };
            let sink = sinks.len();
            let secret = one_of(
                "alert.sinks.secret_env",
                "secret_env or secret_file",
                r.secret_env,
                r.secret_file,
            )?;
            if kind == SinkKind::Generic && secret.is_none() {
                return Err(inv(
                    "alert.sinks.secret_env",
                    format!("sink `{n}`: a generic webhook is signed; set secret_env or secret_file"),
                ));
            }
            let routing_key = one_of(
                "alert.sinks.routing_key_env",
                "routing_key_env or routing_key_file",
                r.routing_key_env,
                r.routing_key_file,
            )?;
            if kind == SinkKind::PagerDuty && routing_key.is_none() {
                return Err(inv(
                    "alert.sinks.routing_key_env",
                    format!(
                        "sink `{n}`: PagerDuty needs routing_key_env (the variable holding the integration key) or routing_key_file"
                    ),
                ));
            }
            for (field, v) in [
                ("alert.sinks.timeout_ms", r.timeout_ms),
                ("alert.sinks.max_concurrency", r.max_concurrency as u64),
                ("alert.sinks.max_attempts", r.max_attempts as u64),
                ("alert.sinks.max_retry_minutes", r.max_retry_minutes),
                ("alert.sinks.backoff_initial_ms", r.backoff_initial_ms),
                ("alert.sinks.resend_interval_secs", r.resend_interval_secs),
            ] {
                if v == 0 {
                    return Err(inv(field, format!("sink `{n}`: must be at least 1")));
                }
            }
            if r.backoff_max_ms < r.backoff_initial_ms {
                return Err(inv(
                    "alert.sinks.backoff_max_ms",
                    format!(
                        "sink `{n}`: must be at least backoff_initial_ms = {}",
                        r.backoff_initial_ms
                    ),
                ));
            }
            let min_severity = severity_rank(&r.min_severity).ok_or_else(|| {
                inv(
                    "alert.sinks.min_severity",
                    format!("sink `{n}`: `{}`: use info, warning or critical", r.min_severity),
                )
            })?;
            for (slot, source) in [
                (SecretSlot::Url, url_source),
                (SecretSlot::SigningKey, secret),
                (SecretSlot::RoutingKey, routing_key),
            ] {
                if let Some(source) = source {
                    secrets.push(SecretRef {
                        target: SecretTarget::Sink {
                            index: sink,
                            name: n.clone(),
                            slot,
                        },
                        source,
                    });
                }
            }
            sinks.push(SinkSpec {
                name: n,
                kind,
                url,
                secret: None,
                routing_key: None,
                timeout: Duration::from_millis(r.timeout_ms),
                max_concurrency: r.max_concurrency,
                max_attempts: r.max_attempts,
                max_retry: Duration::from_secs(r.max_retry_minutes.saturating_mul(60)),
                backoff_initial: Duration::from_millis(r.backoff_initial_ms),
                backoff_max: Duration::from_millis(r.backoff_max_ms),
                min_severity,
                repeat_interval: r
                    .repeat_interval_minutes
                    .map(|m| duration_ms("alert.sinks.repeat_interval_minutes", m, MINUTE_MS))
                    .transpose()?,
                resend_interval: Duration::from_secs(r.resend_interval_secs),
            });
        }
        let alert = AlertConfig {
            grafana_url: self.grafana_url.trim_end_matches('/').to_string(),
            resolve_after: duration_ms("alert.resolve_after_minutes", self.resolve_after_minutes, MINUTE_MS)?,
            repeat_interval: duration_ms("alert.repeat_interval_minutes", self.repeat_interval_minutes, MINUTE_MS)?,
            group_by,
            correlate,
            outbox_path: if self.outbox_path.is_absolute() {
                self.outbox_path
            } else {
                base.join(self.outbox_path)
            },
            outbox_retention: Duration::from_secs(self.outbox_retention_hours.saturating_mul(3600)),
            silences: self.silences,
            sinks,
        };
        Ok((alert, secrets))
    }
}

/// An endpoint URL must be http:// or https://. The message never shows the
/// URL past its host: webhook URLs carry credentials.
pub(super) fn check_url(url: &SinkUrl, field: &'static str, sink: &str) -> Result<(), ConfigError> {
    let u = url.expose();
    if u.starts_with("http://") || u.starts_with("https://") {
        return Ok(());
    }
    Err(ConfigError::Invalid {
        field,
        message: format!("sink `{sink}`: `{}` is not an http:// or https:// URL", url.redacted()),
    })
}
