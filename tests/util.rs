//! Shared helpers for the integration tests.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use earshot::config::Config;
use earshot::model::{self, Loaded};

pub fn root() -> PathBuf {
    // The checkout the tests run in (cargo sets this at run time too); the
    // compile-time path is only a fallback, because a target dir shared
    // between clones can reuse a binary built in another checkout.
    std::env::var_os("CARGO_MANIFEST_DIR").map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from)
}

pub fn fixture(name: &str) -> PathBuf {
    root().join("tests/fixtures").join(name)
}

/// Fails with the fix when the real model files are missing.
pub fn require_models() {
    let m = root().join("models");
    for f in ["e5-small-q4.bin", "tokenizer.json"] {
        assert!(
            m.join(f).exists(),
            "models/{f} is missing: run `bash scripts/setup.sh` (the README's test command does)"
        );
    }
}

/// The default configuration (real model from ./models).
pub fn real_config() -> Config {
    require_models();
    Config::default_in(&root())
}

/// The small random encoder (same architecture) with the real tokenizer.
pub fn random_config() -> Config {
    require_models();
    Config::from_toml("[model]\nencoder = \"random\"\n", "test", &root()).unwrap()
}

/// The real model, loaded once per test binary.
pub fn real_model() -> &'static std::sync::Mutex<Loaded> {
    static M: OnceLock<std::sync::Mutex<Loaded>> = OnceLock::new();
    M.get_or_init(|| {
        let cfg = real_config();
        std::sync::Mutex::new(model::load(&cfg.model, &candle_core::Device::Cpu).expect("load real model"))
    })
}

pub fn read_lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_string)
        .collect()
}

pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let d: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na: f32 = a.iter().map(|x| x * x).sum::<f32>().sqrt();
    let nb: f32 = b.iter().map(|x| x * x).sum::<f32>().sqrt();
    d / (na * nb)
}

/// A free TCP port on 127.0.0.1 (for servers the tests start).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind 127.0.0.1:0")
        .port()
}

/// A child process (Alertmanager, Prometheus) killed when the test ends.
pub struct KillOnDrop(pub std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// GET (or any request) and parse the JSON answer; panics with the error.
pub async fn get_json(req: reqwest::RequestBuilder) -> serde_json::Value {
    req.send()
        .await
        .expect("request failed")
        .json()
        .await
        .expect("answer is not JSON")
}
