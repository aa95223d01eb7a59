//! `earshot run`: the long-running engine on a Kafka consumer group.

use std::process::ExitCode;
use std::sync::Arc;

use clap::Args;
use earshot::pipeline::{engine, PipelineStats};
use earshot::server;

use super::ModelArgs;

#[derive(Args)]
pub struct RunArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// Stop (drain and commit) once no message has arrived for this many
    /// seconds after the first one: for demos and batch back-fills. Without
    /// it the engine runs until SIGTERM / Ctrl-C.
    #[arg(long, env = "EARSHOT_UNTIL_IDLE")]
    until_idle: Option<u64>,
    /// Override `kafka.group_id`.
    #[arg(long, env = "EARSHOT_GROUP_ID")]
    group_id: Option<String>,
    /// Override `kafka.topics` (repeatable).
    #[arg(long)]
    topic: Vec<String>,
    /// Address of the HTTP server (/metrics, /healthz, /readyz, /stats,
    /// /alerts, /silences, /classify). Loopback by default; `off` disables it.
    /// Any non-loopback address (e.g. 0.0.0.0:9464) needs a token
    /// (--http-token-file or EARSHOT_HTTP_TOKEN) or --insecure-http.
    #[arg(long, env = "EARSHOT_HTTP_ADDR", default_value = "127.0.0.1:9464")]
    http_addr: String,
    /// Bearer token required by every HTTP route except /healthz. Prefer the
    /// environment variable or --http-token-file: a flag's value shows in `ps`.
    #[arg(
        long,
        env = "EARSHOT_HTTP_TOKEN",
        hide_env_values = true,
        conflicts_with = "http_token_file"
    )]
    http_token: Option<String>,
    /// File holding the bearer token (trimmed), e.g. a mounted secret.
    #[arg(long, env = "EARSHOT_HTTP_TOKEN_FILE")]
    http_token_file: Option<std::path::PathBuf>,
    /// Serve a non-loopback --http-addr without a token (only when something
    /// in front of it authenticates, e.g. a proxy or a network policy).
    /// The variable takes true/false, 1/0, yes/no, on/off.
    #[arg(long, env = "EARSHOT_INSECURE_HTTP", value_parser = clap::builder::BoolishValueParser::new())]
    insecure_http: bool,
}

async fn idle_for(stats: Arc<PipelineStats>, secs: u64) {
    use std::sync::atomic::Ordering;
    let start = std::time::Instant::now();
    let mut last = (0u64, start);
    loop {
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
        let now = stats.received.load(Ordering::Relaxed);
        let acked = stats.acked.load(Ordering::Relaxed);
        if now != last.0 {
            last = (now, std::time::Instant::now());
        } else if now > 0 && acked >= now && last.1.elapsed().as_secs() >= secs {
            tracing::info!(idle_s = secs, "no new messages; stopping");
            return;
        } else if now == 0 && start.elapsed().as_secs() >= secs.max(15) {
            // Joining a group takes a few seconds on a real cluster; after
            // that, an empty topic (or one this group has fully consumed) ends the run.
            tracing::warn!("no messages arrived (topic empty or already consumed by this group); stopping");
            return;
        }
    }
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("failed to install the SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

pub fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    args.model.init_logging();
    // Before anything slow: a server that may not start is a usage error.
    let http_addr = server::parse_addr(&args.http_addr)?;
    let http_token = server::load_token(args.http_token.clone(), args.http_token_file.as_deref())?;
    let exposure = match http_addr {
        Some(addr) => Some(server::check_bind(addr, http_token.is_some(), args.insecure_http)?),
        None => None,
    };
    let mut cfg = args.model.load_config()?;
    if let Some(g) = args.group_id {
        cfg.kafka.group_id = g;
    }
    if !args.topic.is_empty() {
        cfg.kafka.topics = args.topic;
    }
    super::require_model_files(&cfg)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(std::thread::available_parallelism().map_or(2, |n| n.get()).max(2))
        .enable_all()
        .build()?;
    let stats = Arc::new(PipelineStats::default());
    let live = Arc::new(engine::Live::new(stats.clone()));
    // The alert stage's `AlertApi` goes into `live.alerts` once the engine
    // starts it (engine::run_kafka_live); until then /alerts answers 503.
    let http = match (http_addr, exposure) {
        (Some(addr), Some(exposure)) => {
            let auth = http_token.is_some();
            let state = server::AppState::new(live.clone(), http_token);
            let (bound, task) = rt.block_on(server::serve(addr, state))?;
            if exposure == server::Exposure::Insecure {
                tracing::warn!(addr = %bound, "http server listening on a non-loopback address WITHOUT a token (--insecure-http)");
            } else {
                tracing::info!(addr = %bound, auth, "http server listening");
            }
            Some(task)
        }
        _ => None,
    };
    let until_idle = args.until_idle;
    let idle_stats = stats.clone();
    let shutdown = async move {
        match until_idle {
            Some(s) => tokio::select! {
                _ = shutdown_signal() => {}
                _ = idle_for(idle_stats, s) => {}
            },
            None => shutdown_signal().await,
        }
    };
    let device = args.model.device.clone();
    let summary = rt.block_on(async move {
        // The alert stage (outbox + delivery workers); run_kafka_live also
        // publishes it in `live.alerts` for the HTTP server.
        let alerts = earshot::alert::service::AlertService::start(&cfg.alert)
            .map_err(|e| anyhow::anyhow!(e).context("failed to start the alert stage"))?;
        engine::run_kafka_live(
            cfg,
            &device,
            live,
            shutdown,
            |alert| println!("ALERT {} {}", alert.status.as_str(), alert.summary),
            alerts,
        )
        .await
    })?;
    if let Some(t) = http {
        t.abort();
    }
    tracing::info!(?summary, "stopped");
    Ok(if summary.drained {
        ExitCode::SUCCESS
    } else {
        super::exit::Exit::NotDrained.into()
    })
}
