//! Loader-level tests: defaults, the shipped example, and that errors name the field.

use std::path::{Path, PathBuf};

use super::*;
use crate::detect::Preset;
use crate::model::EncoderSpec;

/// The error as `main` prints it (`{:#}`): the message and every source.
fn msg(e: &ConfigError) -> String {
    let mut s = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(c) = source {
        s = format!("{s}: {c}");
        source = c.source();
    }
    s
}

fn raw(text: &str) -> String {
    format!("{:#?}", RawConfig::parse(text, "t.toml").unwrap())
}

/// Every key with the value it has when left out, written out by hand so a
/// changed `Default` fails here.
const ALL_DEFAULTS: &str = r#"
[model]
encoder = "e5-small"
dir = "models"
max_tokens = 2048
window_tokens = 256
matmul = "auto"
[model.batch]
max_tokens = 4096
max_batch = 64
[model.random]
hidden = 64
layers = 2
heads = 4
intermediate = 128
seed = 7
[kafka]
brokers = "127.0.0.1:9092"
group_id = "earshot"
topics = ["reviews"]
auto_offset_reset = "earliest"
commit_interval_ms = 1000
properties = {}
properties_env = {}
properties_file = {}
[output]
scored_embedding = false
alerts_topic = "earshot.alerts"
dead_letter_topic = "earshot.dead-letter"
create_topics = true
topic_partitions = 6
topic_replication = -1
dead_letter_max_bytes = 900000
[pipeline]
channel_capacity = 2048
batch_max_wait_ms = 20
tokenizer_threads = 1
max_in_flight = 4096
partition_idle_ms = 1000
merge_buffer = 20000
drain_timeout_ms = 30000
stall_timeout_ms = 60000
send_timeout_ms = 120000
[detect]
preset = "balanced"
rollups = [["brand"], ["brand", "product"], ["brand", "product", "category"], ["brand", "region"], ["region"], ["region", "category"]]
step_secs = 300
windows_secs = [900, 3600, 86400]
cluster_windows_secs = [900, 3600]
out_of_orderness_secs = 60
allowed_lateness_secs = 21600
max_keys = 50000
dedup_ids = 262144
idle_ttl_hours = 336
seasonality = "hour_of_day"
baseline_memory_hours = 168
min_history_hours = 24
clear_after_minutes = 120
cluster_similarity = 0.5
max_clusters = 24
sla_hours = 24
[detect.thresholds]
[detect.spam]
scope = ["brand", "product"]
near_dup_similarity = 0.75
burst_min = 4
window_minutes = 60
author_max = 4
author_window_hours = 24
contradiction_prob = 0.8
contradiction_min = 5
[alert]
grafana_url = "http://localhost:3000"
resolve_after_minutes = 120
repeat_interval_minutes = 240
group_by = ["brand"]
outbox_path = "earshot-data/outbox.redb"
outbox_retention_hours = 168
silences = []
sinks = []
"#;

const SINK_DEFAULTS: &str = "timeout_ms = 10000\nmax_concurrency = 4\nmax_attempts = 10000\nmax_retry_minutes = 1440\n\
    backoff_initial_ms = 500\nbackoff_max_ms = 30000\nmin_severity = \"info\"\nresend_interval_secs = 60\n";

#[test]
fn every_default_is_pinned_and_nested_tables_default_too() {
    let written = raw(ALL_DEFAULTS);
    assert_eq!(raw(""), written);
    assert_eq!(format!("{:#?}", RawConfig::default()), written);
    // A present but empty table takes its own section's defaults.
    let empty_tables = "[model]\n[model.batch]\n[model.random]\n[kafka]\n[kafka.properties]\n[mapping]\n[output]\n\
        [pipeline]\n[detect]\n[detect.thresholds]\n[detect.spam]\n[alert]\n";
    assert_eq!(raw(empty_tables), written);
    // A partial nested table keeps the defaults of the keys it leaves out.
    let c = RawConfig::parse("[model.batch]\nmax_batch = 8\n[detect.spam]\nburst_min = 9\n", "t").unwrap();
    assert_eq!(
        (c.model.batch.max_tokens, c.model.batch.max_batch, c.model.max_tokens),
        (4096, 8, 2048)
    );
    assert_eq!(
        (c.detect.spam.burst_min, c.detect.spam.author_max, c.detect.step_secs),
        (9, 4, 300)
    );
    let sink = "[[alert.sinks]]\nname = \"s\"\nkind = \"slack\"\nurl = \"http://h\"\n";
    assert_eq!(raw(sink), raw(&format!("{sink}{SINK_DEFAULTS}")));
}

/// The checkout the tests run in, read at run time (cargo sets it): a target
/// dir shared between clones can reuse a test binary compiled in another
/// checkout, whose compile-time path may no longer exist.
fn manifest_dir() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR").map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from)
}

#[test]
fn the_shipped_example_lists_the_defaults() {
    let root = manifest_dir();
    let text = std::fs::read_to_string(root.join("examples/earshot.toml")).unwrap();
    let mut example = RawConfig::parse(&text, "earshot.toml").unwrap();
    assert_eq!(
        example.model.dir,
        Path::new("../models"),
        "the example points at the repo's models/"
    );
    example.model.dir = PathBuf::from("models");
    assert_eq!(format!("{example:#?}"), format!("{:#?}", RawConfig::default()));
}

#[test]
fn a_sink_without_name_kind_or_url_is_a_parse_error() {
    for key in ["name", "kind", "url"] {
        let text = "[[alert.sinks]]\nname = \"s\"\nkind = \"slack\"\nurl = \"http://h\"\n"
            .lines()
            .filter(|l| !l.starts_with(key))
            .collect::<Vec<_>>()
            .join("\n");
        let e = Config::from_toml(&text, "t.toml", Path::new(".")).unwrap_err();
        assert!(matches!(e, ConfigError::Parse { .. }), "{e:?}");
        assert!(msg(&e).contains(&format!("missing field `{key}`")), "{}", msg(&e));
    }
}

#[test]
fn read_and_parse_errors_keep_their_source() {
    let e = Config::from_file(Path::new("/nonexistent/earshot.toml")).unwrap_err();
    let source = std::error::Error::source(&e).and_then(|s| s.downcast_ref::<std::io::Error>());
    assert_eq!(source.map(|s| s.kind()), Some(std::io::ErrorKind::NotFound));
    assert_eq!(e.to_string(), "cannot read config file /nonexistent/earshot.toml");
    let e = Config::from_toml("[model]\nencodr = \"x\"\n", "t.toml", Path::new(".")).unwrap_err();
    let source = std::error::Error::source(&e).and_then(|s| s.downcast_ref::<toml::de::Error>());
    assert!(source.is_some_and(|s| s.message().contains("encodr")), "{e:?}");
}

#[test]
fn defaults_point_into_models_dir() {
    let c = Config::default_in(Path::new("/srv/earshot"));
    assert_eq!(
        c.model.encoder,
        EncoderSpec::E5s1 {
            weights: PathBuf::from("/srv/earshot/models/e5-small-q4.bin")
        }
    );
    assert_eq!(
        c.model.sentiment_head.as_deref(),
        Some(Path::new("/srv/earshot/models/heads/sentiment.json"))
    );
    assert_eq!(c.batch.max_batch, 64);
}

#[test]
fn unknown_fields_and_bad_values_are_named() {
    let e = Config::from_toml("[model]\nencodr = \"x\"\n", "t.toml", Path::new(".")).unwrap_err();
    assert!(msg(&e).contains("encodr"), "{e}");
    let e = Config::from_toml("[model]\nencoder = \"gpt\"\n", "t.toml", Path::new(".")).unwrap_err();
    assert!(msg(&e).contains("model.encoder"), "{e}");
    let e = Config::from_toml("[model]\nmax_tokens = 9000\n", "t.toml", Path::new(".")).unwrap_err();
    assert!(msg(&e).contains("model.max_tokens"), "{e}");
    let e = Config::from_toml("[model]\nwindow_tokens = 1024\n", "t.toml", Path::new(".")).unwrap_err();
    assert!(
        msg(&e).contains("model.window_tokens") && msg(&e).contains("512 positions"),
        "{e}"
    );
    let e = Config::from_toml(
        "[model]\nwindow_tokens = 256\n[model.batch]\nmax_tokens = 200\n",
        "t.toml",
        Path::new("."),
    )
    .unwrap_err();
    assert!(msg(&e).contains("model.batch.max_tokens"), "{e}");
    let e = Config::from_toml(
        "[model]\nencoder = \"random\"\n[model.random]\nhidden = 50\n",
        "t.toml",
        Path::new("."),
    )
    .unwrap_err();
    assert!(msg(&e).contains("model.random.hidden"), "{e}");
}

#[test]
fn detect_defaults_match_the_detector_and_overrides_apply() {
    let c = Config::default_in(Path::new("."));
    assert_eq!(c.detect, DetectConfig::default());
    let c = Config::from_toml(
        "[detect]\npreset = \"fewer\"\nrollups = [[\"brand\", \"language\"]]\n[detect.thresholds]\nmin_count = 9\n",
        "t.toml",
        Path::new("."),
    )
    .unwrap();
    assert_eq!(c.detect.thresholds.min_count, 9);
    assert_eq!(c.detect.thresholds.p_volume, Preset::Fewer.thresholds().p_volume);
    let e = Config::from_toml("[detect]\nwindows_secs = [1000]\n", "t.toml", Path::new(".")).unwrap_err();
    assert!(msg(&e).contains("detect.windows_secs"), "{e}");
    let e = Config::from_toml("[detect]\nrollups = [[\"shop\"]]\n", "t.toml", Path::new(".")).unwrap_err();
    assert!(msg(&e).contains("shop"), "{e}");
    let e = Config::from_toml("[detect.spam]\nburst = 3\n", "t.toml", Path::new(".")).unwrap_err();
    assert!(msg(&e).contains("burst"), "{e}");
    let c = Config::from_toml(
        "[detect.thresholds]\ndrift_ratio = 2.5\ndrift_h = 12\ncluster_cusum_ratio = 8\ncluster_cusum_h = 9\n",
        "t.toml",
        Path::new("."),
    )
    .unwrap();
    let th = c.detect.thresholds;
    assert_eq!(
        (th.drift_ratio, th.drift_h, th.cluster_cusum_ratio, th.cluster_cusum_h),
        (2.5, 12.0, 8.0, 9.0)
    );
    for (toml, field) in [
        ("drift_ratio = 1.0", "detect.thresholds.drift_ratio"),
        ("drift_h = -1.0", "detect.thresholds.drift_h"),
        ("cluster_cusum_ratio = 0.5", "detect.thresholds.cluster_cusum_ratio"),
        ("cluster_cusum_h = 0", "detect.thresholds.cluster_cusum_h"),
    ] {
        let e = Config::from_toml(&format!("[detect.thresholds]\n{toml}\n"), "t.toml", Path::new(".")).unwrap_err();
        assert!(msg(&e).contains(field), "{e}");
    }
}

#[test]
fn alert_sinks_are_validated_with_the_field_and_secrets_redacted() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("s"), "whsec_c2VjcmV0LWJ5dGVz\n").unwrap();
    let ok = "[[alert.sinks]]\nname = \"g\"\nkind = \"generic\"\nurl = \"http://h/x\"\nsecret_file = \"s\"\n";
    let c = Config::from_toml(ok, "t.toml", dir.path()).unwrap();
    assert_eq!(c.alert.sinks[0].secret.as_ref().unwrap().0, b"secret-bytes");
    assert!(!format!("{:?}", c.alert).contains("secret-bytes"));
    assert_eq!(c.alert.outbox_path, dir.path().join("earshot-data/outbox.redb"));
    for (toml, field) in [
        (ok.replace("generic", "teams"), "alert.sinks.kind"),
        (ok.replace("http://h/x", "h/x"), "alert.sinks.url"),
        (ok.replace("secret_file = \"s\"\n", ""), "alert.sinks.secret_env"),
        (ok.replace("\"s\"", "\"missing\""), "alert.sinks.secret_file"),
        (
            ok.replace("secret_file = \"s\"", "secret_env = \"EARSHOT_TEST_UNSET_VAR\""),
            "alert.sinks.secret_env",
        ),
        (
            ok.replace("generic", "pagerduty").replace("secret_file = \"s\"\n", ""),
            "alert.sinks.routing_key_env",
        ),
        (format!("{ok}min_severity = \"high\"\n"), "alert.sinks.min_severity"),
        (format!("{ok}{}", ok), "alert.sinks.name"),
        (
            "[alert]\nsilences = [{ matchers = { brand = \"V\" }, ends_at = \"soon\" }]\n".to_string(),
            "alert.silences",
        ),
        ("[alert]\ngroup_by = [\"shop\"]\n".to_string(), "alert.group_by"),
    ] {
        let e = msg(&Config::from_toml(&toml, "t.toml", dir.path()).unwrap_err());
        assert!(e.contains(field), "{field}: {e}");
    }
}

#[test]
fn shipped_example_config_is_valid_and_matches_the_defaults() {
    let root = manifest_dir();
    let example = Config::from_file(&root.join("examples/earshot.toml")).unwrap();
    let defaults = Config::default_in(&root.join("examples"));
    assert_eq!(example.kafka, defaults.kafka);
    assert_eq!(example.mapping, defaults.mapping);
    assert_eq!(example.output, defaults.output);
    assert_eq!(example.pipeline, defaults.pipeline);
    assert_eq!(example.detect, defaults.detect);
    assert_eq!(example.alert, defaults.alert);
    assert_eq!(example.model.tokenizer, root.join("examples/../models/tokenizer.json"));
}

#[test]
fn durations_too_long_are_rejected_naming_the_field_not_wrapped() {
    // Found by scripts/fuzz.sh: `x as i64 * 1000` wrapped to a negative window.
    for (toml, field) in [
        (
            format!("[detect]\nallowed_lateness_secs = {}\n", i64::MAX),
            "detect.allowed_lateness_secs",
        ),
        (
            format!("[detect]\nidle_ttl_hours = {}\n", 1u64 << 40),
            "detect.idle_ttl_hours",
        ),
        (
            format!("[detect.spam]\nwindow_minutes = {}\n", 1u64 << 50),
            "detect.spam.window_minutes",
        ),
        (
            format!("[alert]\nrepeat_interval_minutes = {}\n", 1u64 << 45),
            "alert.repeat_interval_minutes",
        ),
    ] {
        let e = Config::from_toml(&toml, "t.toml", Path::new(".")).unwrap_err();
        let text = e.to_string();
        assert!(
            text.contains(field) && text.contains("at most 100 years"),
            "{toml}: {text}"
        );
    }
    // 10 years is fine.
    Config::from_toml("[detect]\nidle_ttl_hours = 87600\n", "t.toml", Path::new(".")).unwrap();
}

#[test]
fn a_min_event_time_after_the_clock_is_refused_at_start_up() {
    let base = Path::new(".");
    let past = "[mapping]\nmin_event_time = \"2020-01-01T00:00:00Z\"\n";
    let c = Config::from_toml(past, "t.toml", base).unwrap();
    assert_eq!(c.mapping.min_event_time, 1_577_836_800_000);
    let future = "[mapping]\nmin_event_time = \"2300-01-01T00:00:00Z\"\n";
    let e = Config::from_toml(future, "t.toml", base).unwrap_err();
    assert!(
        msg(&e).contains("mapping.min_event_time") && msg(&e).contains("later than the clock"),
        "{}",
        msg(&e)
    );
    // The rule itself, against a given clock.
    assert!(c.check_clock(1_577_836_800_000).is_ok());
    assert!(c.check_clock(1_577_836_799_999).is_err());
}

#[test]
fn incident_correlation_is_configured_and_validated() {
    let c = Config::from_toml(
        "[alert]\ncorrelate = false\nincident_update_minutes = 45\ncorrelate_min_overlap = 0.5\n",
        "t.toml",
        Path::new("."),
    )
    .unwrap();
    let k = c.alert.correlate;
    assert_eq!((k.enabled, k.update_interval, k.min_overlap), (false, 45 * 60_000, 0.5));
    let d = Config::from_toml("", "t.toml", Path::new(".")).unwrap().alert.correlate;
    assert!(d.enabled, "incidents are on by default");
    for bad in ["0", "1.5", "-0.1"] {
        let e = Config::from_toml(
            &format!("[alert]\ncorrelate_min_overlap = {bad}\n"),
            "t.toml",
            Path::new("."),
        )
        .unwrap_err();
        assert!(msg(&e).contains("alert.correlate_min_overlap"), "{e}");
    }
}
