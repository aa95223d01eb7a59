//! Secret resolution: the one step of loading that reads the environment and
//! secret files. Validation ([`super::RawConfig::validate`]) is pure and leaves
//! every secret as a [`SecretRef`] (a variable's name or a file's path);
//! [`resolve`] reads them, given an environment lookup, so it can be tested
//! without touching the process environment. Secret values are never printed.

use std::path::PathBuf;

use super::{Config, ConfigError, Secret, SinkUrl, Unresolved};

/// Which secret of a sink a reference fills.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretSlot {
    /// The endpoint URL (`url_env` / `url_file`): Slack and PagerDuty-style
    /// URLs embed a credential.
    Url,
    /// The Standard Webhooks signing key (`secret_env` / `secret_file`).
    SigningKey,
    /// The PagerDuty routing key (`routing_key_env` / `routing_key_file`).
    RoutingKey,
}

/// What a secret fills.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretTarget {
    /// A secret of `alert.sinks[index]` (`name` for error messages).
    Sink {
        index: usize,
        name: String,
        slot: SecretSlot,
    },
    /// A librdkafka property (`kafka.properties_env` / `properties_file`),
    /// e.g. `sasl.password`, added to `kafka.properties`.
    KafkaProperty(String),
}

/// Where a secret is read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    /// An environment variable's name.
    Env(String),
    /// A file, already resolved against the config file's directory.
    File(PathBuf),
}

/// A secret named by the config but not read yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretRef {
    pub target: SecretTarget,
    pub source: SecretSource,
}

impl SecretRef {
    /// The config key that named this secret.
    pub fn field(&self) -> &'static str {
        let env = matches!(self.source, SecretSource::Env(_));
        match &self.target {
            SecretTarget::Sink { slot, .. } => match (slot, env) {
                (SecretSlot::Url, true) => "alert.sinks.url_env",
                (SecretSlot::Url, false) => "alert.sinks.url_file",
                (SecretSlot::SigningKey, true) => "alert.sinks.secret_env",
                (SecretSlot::SigningKey, false) => "alert.sinks.secret_file",
                (SecretSlot::RoutingKey, true) => "alert.sinks.routing_key_env",
                (SecretSlot::RoutingKey, false) => "alert.sinks.routing_key_file",
            },
            SecretTarget::KafkaProperty(_) if env => "kafka.properties_env",
            SecretTarget::KafkaProperty(_) => "kafka.properties_file",
        }
    }

    /// Whose secret, for messages: "sink `pd`", "property `sasl.password`".
    fn owner(&self) -> String {
        match &self.target {
            SecretTarget::Sink { name, .. } => format!("sink `{name}`"),
            SecretTarget::KafkaProperty(p) => format!("property `{p}`"),
        }
    }

    /// What to do when the variable is unset.
    fn env_fix(&self) -> &'static str {
        match &self.target {
            SecretTarget::Sink { slot, .. } => match slot {
                SecretSlot::Url => "export the webhook URL or use url_file",
                SecretSlot::SigningKey => "export it or use secret_file",
                SecretSlot::RoutingKey => "export the PagerDuty integration key or use routing_key_file",
            },
            SecretTarget::KafkaProperty(_) => "export it or use kafka.properties_file",
        }
    }
}

/// The process environment, as [`resolve`] takes it.
pub fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// Reads every secret `config` refers to: environment variables through `env`
/// (a variable that is unset or not Unicode counts as unset), `*_file` secrets
/// from disk. Values are trimmed and must not be empty; a signing key is
/// `whsec_<base64>` or raw text; a URL must be http:// or https://. No
/// message shows a value.
pub fn resolve(config: Unresolved, env: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
    let Unresolved { mut config, secrets } = config;
    for r in secrets {
        let field = r.field();
        let owner = r.owner();
        let text = match &r.source {
            SecretSource::Env(var) => env(var).ok_or_else(|| ConfigError::Invalid {
                field,
                message: format!("{owner}: environment variable `{var}` is not set; {}", r.env_fix()),
            })?,
            SecretSource::File(path) => std::fs::read_to_string(path).map_err(|source| ConfigError::SecretFile {
                field,
                owner: owner.clone(),
                path: path.clone(),
                source,
            })?,
        };
        let text = text.trim();
        if text.is_empty() {
            return Err(ConfigError::Invalid {
                field,
                message: format!("{owner}: the secret is empty"),
            });
        }
        match r.target {
            SecretTarget::Sink { index, name, slot } => {
                let sink = &mut config.alert.sinks[index];
                match slot {
                    SecretSlot::Url => {
                        let url = SinkUrl::new(text);
                        super::alert::check_url(&url, field, &name)?;
                        sink.url = url;
                    }
                    SecretSlot::SigningKey => sink.secret = Some(signing_key(text, field, &name)?),
                    SecretSlot::RoutingKey => sink.routing_key = Some(Secret(text.as_bytes().to_vec())),
                }
            }
            SecretTarget::KafkaProperty(p) => {
                config.kafka.properties.insert(p, text.to_string());
            }
        }
    }
    Ok(config)
}

/// A Standard Webhooks secret: `whsec_<base64 key>`, or the raw text as key bytes.
fn signing_key(s: &str, field: &'static str, sink: &str) -> Result<Secret, ConfigError> {
    use base64::Engine;
    match s.strip_prefix("whsec_") {
        Some(b) => base64::engine::general_purpose::STANDARD
            .decode(b)
            .map(Secret)
            .map_err(|source| ConfigError::SecretEncoding {
                field,
                sink: sink.to_string(),
                source,
            }),
        None => Ok(Secret(s.as_bytes().to_vec())),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::path::Path;

    use super::*;

    const SINKS: &str =
        "[[alert.sinks]]\nname = \"g\"\nkind = \"generic\"\nurl = \"http://h/x\"\nsecret_env = \"HOOK_SECRET\"\n\
        [[alert.sinks]]\nname = \"pd\"\nkind = \"pagerduty\"\nurl = \"http://h/pd\"\nrouting_key_env = \"PD_KEY\"\n";

    fn load(text: &str, env: &BTreeMap<&str, &str>) -> Result<Config, ConfigError> {
        Config::from_toml_with_env(text, "t.toml", Path::new("."), |k| env.get(k).map(|v| v.to_string()))
    }

    #[test]
    fn validation_reads_no_secrets_and_resolve_fills_them_from_the_given_env() {
        let raw: super::super::RawConfig = toml::from_str(SINKS).unwrap();
        let pending = raw.validate(Path::new(".")).unwrap();
        assert!(pending
            .config
            .alert
            .sinks
            .iter()
            .all(|s| s.secret.is_none() && s.routing_key.is_none()));
        assert_eq!(
            pending.secrets.iter().map(SecretRef::field).collect::<Vec<_>>(),
            ["alert.sinks.secret_env", "alert.sinks.routing_key_env"]
        );
        let env = BTreeMap::from([("HOOK_SECRET", " whsec_c2VjcmV0LWJ5dGVz\n"), ("PD_KEY", "R0UT1NG\n")]);
        let c = resolve(pending, |k| env.get(k).map(|v| v.to_string())).unwrap();
        assert_eq!(c.alert.sinks[0].secret.as_ref().unwrap().0, b"secret-bytes");
        assert_eq!(c.alert.sinks[1].routing_key.as_ref().unwrap().0, b"R0UT1NG");
        assert!(!format!("{c:?}").contains("R0UT1NG"));
    }

    #[test]
    fn unset_empty_or_malformed_secrets_name_the_field_and_the_fix() {
        let full = BTreeMap::from([("HOOK_SECRET", "raw-key"), ("PD_KEY", "k")]);
        assert!(load(SINKS, &full).is_ok());
        for (unset, field, fix) in [
            ("HOOK_SECRET", "alert.sinks.secret_env", "export it or use secret_file"),
            (
                "PD_KEY",
                "alert.sinks.routing_key_env",
                "export the PagerDuty integration key",
            ),
        ] {
            let mut env = full.clone();
            env.remove(unset);
            let e = load(SINKS, &env).unwrap_err().to_string();
            assert!(e.contains(field) && e.contains(unset) && e.contains(fix), "{e}");
        }
        let mut env = full.clone();
        env.insert("HOOK_SECRET", "  \n");
        let e = load(SINKS, &env).unwrap_err().to_string();
        assert!(e.contains("alert.sinks.secret_env") && e.contains("empty"), "{e}");
        env.insert("HOOK_SECRET", "whsec_!!");
        let e = load(SINKS, &env).unwrap_err();
        assert!(
            matches!(
                e,
                ConfigError::SecretEncoding {
                    field: "alert.sinks.secret_env",
                    ..
                }
            ),
            "{e}"
        );
        assert!(std::error::Error::source(&e).is_some());
    }

    #[test]
    fn an_unreadable_secret_file_keeps_its_io_error() {
        let toml = "[[alert.sinks]]\nname = \"g\"\nkind = \"generic\"\nurl = \"http://h/x\"\nsecret_file = \"no-such.secret\"\n";
        let e = load(toml, &BTreeMap::new()).unwrap_err();
        let ConfigError::SecretFile {
            field, path, source, ..
        } = &e
        else {
            panic!("{e:?}")
        };
        assert_eq!(
            (*field, path.as_path()),
            ("alert.sinks.secret_file", Path::new("./no-such.secret"))
        );
        assert_eq!(source.kind(), std::io::ErrorKind::NotFound);
        assert!(e.to_string().contains("no-such.secret"), "{e}");
    }

    /// Every secret a config can hold, none of them written in it but one
    /// inline Kafka password (still never printed).
    const ALL_SECRETS: &str = "[kafka]\n[kafka.properties]\n\"security.protocol\" = \"SASL_SSL\"\n\
        \"sasl.username\" = \"earshot\"\n\"ssl.key.password\" = \"INLINE-KEY-PW\"\n\
        [kafka.properties_env]\n\"sasl.password\" = \"KAFKA_PW\"\n\
        [kafka.properties_file]\n\"sasl.oauthbearer.client.secret\" = \"oauth.secret\"\n\
        [[alert.sinks]]\nname = \"slack\"\nkind = \"slack\"\nurl_env = \"SLACK_URL\"\n\
        [[alert.sinks]]\nname = \"pd\"\nkind = \"pagerduty\"\nurl_file = \"pd.url\"\nrouting_key_file = \"pd.key\"\n\
        [[alert.sinks]]\nname = \"g\"\nkind = \"generic\"\nurl = \"https://hooks.example/T0/B0/SECRETPATH\"\nsecret_env = \"HOOK_SECRET\"\n";

    const VALUES: [&str; 8] = [
        "KAFKA-PW-VALUE",
        "OAUTH-VALUE",
        "INLINE-KEY-PW",
        "XOXB-SLACK-SECRET",
        "PD-URL-SECRET",
        "PD-ROUTING-KEY",
        "SECRETPATH",
        "hook-secret-value",
    ];

    fn secret_files() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("oauth.secret"), "OAUTH-VALUE\n").unwrap();
        std::fs::write(
            dir.path().join("pd.url"),
            "https://events.pagerduty.test/v2/enqueue?t=PD-URL-SECRET\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("pd.key"), "PD-ROUTING-KEY\n").unwrap();
        dir
    }

    fn all_env() -> BTreeMap<&'static str, &'static str> {
        BTreeMap::from([
            ("KAFKA_PW", "KAFKA-PW-VALUE\n"),
            ("SLACK_URL", "https://hooks.slack.com/services/T0/B0/XOXB-SLACK-SECRET"),
            ("HOOK_SECRET", "hook-secret-value"),
        ])
    }

    fn load_in(dir: &Path, text: &str, env: &BTreeMap<&str, &str>) -> Result<Config, ConfigError> {
        Config::from_toml_with_env(text, "t.toml", dir, |k| env.get(k).map(|v| v.to_string()))
    }

    #[test]
    fn urls_routing_keys_and_kafka_properties_load_from_env_or_file_and_never_print() {
        let dir = secret_files();
        let c = load_in(dir.path(), ALL_SECRETS, &all_env()).unwrap();
        let p = &c.kafka.properties;
        assert_eq!(p["sasl.password"], "KAFKA-PW-VALUE");
        assert_eq!(p["sasl.oauthbearer.client.secret"], "OAUTH-VALUE");
        assert_eq!(p["security.protocol"], "SASL_SSL");
        let s = &c.alert.sinks;
        assert_eq!(
            s[0].url.expose(),
            "https://hooks.slack.com/services/T0/B0/XOXB-SLACK-SECRET"
        );
        assert_eq!(
            s[1].url.expose(),
            "https://events.pagerduty.test/v2/enqueue?t=PD-URL-SECRET"
        );
        assert_eq!(s[1].routing_key.as_ref().unwrap().0, b"PD-ROUTING-KEY");
        assert_eq!(s[2].url.expose(), "https://hooks.example/T0/B0/SECRETPATH");
        assert_eq!(s[2].secret.as_ref().unwrap().0, b"hook-secret-value");
        for shown in [format!("{c:?}"), format!("{c:#?}")] {
            for v in VALUES {
                assert!(!shown.contains(v), "{v} printed: {shown}");
            }
            // What is not secret still shows.
            for v in [
                "https://hooks.slack.com/***",
                "https://events.pagerduty.test/***",
                "SASL_SSL",
                "KAFKA_PW",
            ] {
                assert!(shown.contains(v), "{v} missing");
            }
        }
        // The raw config (before validation) does not print inline URLs either.
        let raw = format!("{:?}", super::super::RawConfig::parse(ALL_SECRETS, "t").unwrap());
        assert!(!raw.contains("SECRETPATH") && !raw.contains("INLINE-KEY-PW"), "{raw}");
    }

    #[test]
    fn missing_conflicting_or_bad_secret_sources_name_the_field_without_the_value() {
        let dir = secret_files();
        let fail = |text: &str, env: &BTreeMap<&str, &str>| {
            let e = load_in(dir.path(), text, env).unwrap_err();
            let mut m = e.to_string();
            if let Some(s) = std::error::Error::source(&e) {
                m = format!("{m}: {s}");
            }
            m
        };
        for (unset, field, fix) in [
            (
                "SLACK_URL",
                "alert.sinks.url_env",
                "export the webhook URL or use url_file",
            ),
            (
                "KAFKA_PW",
                "kafka.properties_env",
                "export it or use kafka.properties_file",
            ),
        ] {
            let mut env = all_env();
            env.remove(unset);
            let e = fail(ALL_SECRETS, &env);
            assert!(e.contains(field) && e.contains(unset) && e.contains(fix), "{e}");
        }
        let mut env = all_env();
        env.insert("SLACK_URL", "hooks.slack.com/services/XOXB-SLACK-SECRET");
        let e = fail(ALL_SECRETS, &env);
        assert!(e.contains("alert.sinks.url_env") && e.contains("not an http"), "{e}");
        assert!(!e.contains("XOXB"), "the value is not printed: {e}");
        let e = fail(&ALL_SECRETS.replace("\"pd.key\"", "\"no-such.key\""), &all_env());
        assert!(
            e.contains("alert.sinks.routing_key_file") && e.contains("sink `pd`") && e.contains("no-such.key"),
            "{e}"
        );
        let e = fail(&ALL_SECRETS.replace("\"oauth.secret\"", "\"gone\""), &all_env());
        assert!(
            e.contains("kafka.properties_file") && e.contains("property `sasl.oauthbearer.client.secret`"),
            "{e}"
        );
        for (text, field) in [
            (
                ALL_SECRETS.replace(
                    "url_env = \"SLACK_URL\"",
                    "url_env = \"SLACK_URL\"\nurl = \"https://h\"",
                ),
                "alert.sinks.url",
            ),
            (
                ALL_SECRETS.replace("url_env = \"SLACK_URL\"", "url_env = \"SLACK_URL\"\nurl_file = \"u\""),
                "alert.sinks.url_env",
            ),
            (
                ALL_SECRETS.replace("routing_key_file", "routing_key_env = \"X\"\nrouting_key_file"),
                "alert.sinks.routing_key_env",
            ),
            (
                ALL_SECRETS.replace(
                    "[kafka.properties_env]",
                    "\"sasl.password\" = \"x\"\n[kafka.properties_env]",
                ),
                "kafka.properties_env",
            ),
            (
                ALL_SECRETS.replace(
                    "[kafka.properties_file]\n",
                    "[kafka.properties_file]\n\"sasl.password\" = \"pw\"\n",
                ),
                "kafka.properties_file",
            ),
        ] {
            let e = fail(&text, &all_env());
            assert!(e.contains(field), "{field}: {e}");
        }
    }
}
