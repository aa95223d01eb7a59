//! Secret resolution: the one step of loading that reads the environment and
//! secret files. Validation ([`super::RawConfig::validate`]) is pure and leaves
//! every secret as a [`SecretRef`] (a variable's name or a file's path);
//! [`resolve`] reads them, given an environment lookup, so it can be tested
//! without touching the process environment. Secret values are never printed.

use std::path::PathBuf;

use super::{Config, ConfigError, Secret, Unresolved};

/// Which secret of a sink a reference fills.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretSlot {
    /// The Standard Webhooks signing key (`secret_env` / `secret_file`).
    SigningKey,
    /// The PagerDuty routing key (`routing_key_env`).
    RoutingKey,
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
    /// Index into `alert.sinks`.
    pub sink: usize,
    /// The sink's name, for error messages.
    pub name: String,
    pub slot: SecretSlot,
    pub source: SecretSource,
}

impl SecretRef {
    /// The config key that named this secret.
    pub fn field(&self) -> &'static str {
        match (self.slot, &self.source) {
            (SecretSlot::SigningKey, SecretSource::Env(_)) => "alert.sinks.secret_env",
            (SecretSlot::SigningKey, SecretSource::File(_)) => "alert.sinks.secret_file",
            (SecretSlot::RoutingKey, _) => "alert.sinks.routing_key_env",
        }
    }
}

/// The process environment, as [`resolve`] takes it.
pub fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// Reads every secret `config` refers to: environment variables through `env`
/// (a variable that is unset or not Unicode counts as unset), `*_file` secrets
/// from disk. Values are trimmed; a signing key is `whsec_<base64>` or raw text.
pub fn resolve(config: Unresolved, env: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
    let Unresolved { mut config, secrets } = config;
    for r in secrets {
        let field = r.field();
        let n = &r.name;
        let text = match &r.source {
            SecretSource::Env(var) => env(var).ok_or_else(|| ConfigError::Invalid {
                field,
                message: match r.slot {
                    SecretSlot::SigningKey => {
                        format!("sink `{n}`: environment variable `{var}` is not set; export it or use secret_file")
                    }
                    SecretSlot::RoutingKey => format!(
                        "sink `{n}`: environment variable `{var}` is not set; export the PagerDuty integration key"
                    ),
                },
            })?,
            SecretSource::File(path) => std::fs::read_to_string(path).map_err(|source| ConfigError::SecretFile {
                field,
                sink: n.clone(),
                path: path.clone(),
                source,
            })?,
        };
        let sink = &mut config.alert.sinks[r.sink];
        match r.slot {
            SecretSlot::SigningKey => sink.secret = Some(signing_key(text.trim(), field, n)?),
            SecretSlot::RoutingKey => sink.routing_key = Some(Secret(text.trim().as_bytes().to_vec())),
        }
    }
    Ok(config)
}

/// A Standard Webhooks secret: `whsec_<base64 key>`, or the raw text as key bytes.
fn signing_key(s: &str, field: &'static str, sink: &str) -> Result<Secret, ConfigError> {
    use base64::Engine;
    if s.is_empty() {
        return Err(ConfigError::Invalid {
            field,
            message: format!("sink `{sink}`: the secret is empty"),
        });
    }
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
}
