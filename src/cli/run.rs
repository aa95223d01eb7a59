//! `earshot run`: the long-running engine on a Kafka consumer group.

use std::process::ExitCode;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use clap::Args;
use earshot::pipeline::{engine, PipelineStats};
use earshot::server;

use super::ModelArgs;

#[derive(Args)]
pub struct RunArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// Stop (drain and commit) once partitions are assigned, every message
    /// up to the end of them is acknowledged (lag 0) and no message has
    /// arrived for this many seconds: for demos and batch back-fills. Without
    /// it the engine runs until SIGTERM / Ctrl-C.
    #[arg(long, env = "EARSHOT_UNTIL_IDLE")]
    until_idle: Option<u64>,
    /// With --until-idle: fail (exit 5) when the consumer group has assigned
    /// no partition to this member for this many seconds (e.g. other members
    /// hold them all, or a killed member is not evicted yet).
    #[arg(long, env = "EARSHOT_ASSIGNMENT_TIMEOUT", default_value_t = 300)]
    assignment_timeout: u64,
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

/// Why `--until-idle` ended the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum IdleEnd {
    /// Assigned, caught up (lag 0, nothing in flight) and quiet.
    Idle,
    /// No partition assigned within --assignment-timeout.
    NeverAssigned,
}

/// What `--until-idle` looks at, once a second-fraction.
#[derive(Debug, Clone, Copy)]
struct IdleView {
    assigned: usize,
    received: u64,
    acked: u64,
    lag: i64,
}

/// The `--until-idle` state machine, clock passed in (unit-tested).
struct IdleWatch {
    idle: Duration,
    assignment_timeout: Duration,
    /// Since when no partition is assigned (None while assigned).
    unassigned_since: Option<Instant>,
    /// When partitions were last (re)assigned.
    assigned_at: Option<Instant>,
    /// Last received count and when it changed.
    last: (u64, Instant),
    waiting_logged: Option<Instant>,
}

impl IdleWatch {
    fn new(idle: Duration, assignment_timeout: Duration, now: Instant) -> Self {
        Self {
            idle,
            assignment_timeout,
            unassigned_since: Some(now),
            assigned_at: None,
            last: (0, now),
            waiting_logged: None,
        }
    }

    fn step(&mut self, v: IdleView, now: Instant) -> Option<IdleEnd> {
        if v.assigned == 0 {
            self.assigned_at = None;
            let since = *self.unassigned_since.get_or_insert(now);
            if self
                .waiting_logged
                .is_none_or(|t| now.duration_since(t) >= Duration::from_secs(10))
            {
                tracing::info!(
                    waited_s = now.duration_since(since).as_secs(),
                    timeout_s = self.assignment_timeout.as_secs(),
                    "--until-idle: waiting for the group to assign partitions to this member"
                );
                self.waiting_logged = Some(now);
            }
            if now.duration_since(since) >= self.assignment_timeout {
                return Some(IdleEnd::NeverAssigned);
            }
            return None;
        }
        self.unassigned_since = None;
        let assigned_at = *self.assigned_at.get_or_insert_with(|| {
            self.last.1 = now;
            now
        });
        if v.received != self.last.0 {
            self.last = (v.received, now);
        }
        let caught_up = v.lag == 0 && v.acked >= v.received;
        let quiet = now.duration_since(self.last.1) >= self.idle;
        // Nothing read yet: give the first fetch time to arrive (a topic
        // that is empty, or already consumed by this group, then ends the run).
        let settled = v.received > 0 || now.duration_since(assigned_at) >= self.idle.max(Duration::from_secs(15));
        (caught_up && quiet && settled).then_some(IdleEnd::Idle)
    }
}

async fn idle_for(live: Arc<engine::Live>, secs: u64, assignment_timeout: u64) -> IdleEnd {
    use std::sync::atomic::Ordering;
    let mut watch = IdleWatch::new(
        Duration::from_secs(secs),
        Duration::from_secs(assignment_timeout),
        Instant::now(),
    );
    loop {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let src = live.source.get();
        let view = IdleView {
            assigned: src.map_or(0, |s| s.assigned_partitions()),
            received: live.stats.received.load(Ordering::Relaxed),
            acked: live.stats.acked.load(Ordering::Relaxed),
            lag: src.map_or(0, |s| s.lag().iter().map(|(_, l)| *l).sum()),
        };
        match watch.step(view, Instant::now()) {
            Some(IdleEnd::Idle) => {
                if view.received == 0 {
                    tracing::warn!("no messages arrived (topic empty or already consumed by this group); stopping");
                } else {
                    tracing::info!(idle_s = secs, "caught up and no new messages; stopping");
                }
                return IdleEnd::Idle;
            }
            Some(IdleEnd::NeverAssigned) => {
                tracing::error!(
                    timeout_s = assignment_timeout,
                    "--until-idle: the group assigned no partitions to this member; stopping"
                );
                return IdleEnd::NeverAssigned;
            }
            None => {}
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
    let assignment_timeout = args.assignment_timeout;
    // SIGTERM / Ctrl-C is honoured in every state: past the drain bound (plus
    // a few seconds for the final commit) the process exits with code 3,
    // whatever it is waiting on (an unreachable broker, a full pipeline).
    let hard_stop = Duration::from_millis(cfg.pipeline.drain_timeout_ms) + Duration::from_secs(5);
    let signalled = Arc::new(tokio::sync::Notify::new());
    {
        let signalled = signalled.clone();
        rt.spawn(async move {
            shutdown_signal().await;
            tracing::info!(bound_s = hard_stop.as_secs(), "shutdown requested");
            std::thread::spawn(move || {
                std::thread::sleep(hard_stop);
                tracing::error!(
                    bound_s = hard_stop.as_secs(),
                    "shutdown did not finish within pipeline.drain_timeout_ms + 5 s; exiting (unacknowledged messages are redelivered)"
                );
                std::process::exit(super::exit::Exit::NotDrained as i32);
            });
            signalled.notify_one();
        });
    }
    let idle_end: Arc<OnceLock<IdleEnd>> = Arc::new(OnceLock::new());
    let (idle_live, idle_out) = (live.clone(), idle_end.clone());
    let shutdown = async move {
        match until_idle {
            Some(s) => tokio::select! {
                _ = signalled.notified() => {}
                end = idle_for(idle_live, s, assignment_timeout) => {
                    let _ = idle_out.set(end);
                }
            },
            None => signalled.notified().await,
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
    });
    if let Some(t) = http {
        t.abort();
    }
    // Tasks still blocked on the broker must not hold the exit.
    rt.shutdown_timeout(Duration::from_secs(2));
    let summary = summary?;
    tracing::info!(?summary, "stopped");
    if idle_end.get() == Some(&IdleEnd::NeverAssigned) {
        return Err(anyhow::Error::new(earshot::ingest::IngestError::Topic(format!(
            "--until-idle: the consumer group assigned no partitions to this member within {assignment_timeout} s \
             (--assignment-timeout); other members may hold them all, or a stopped member is not evicted yet"
        ))));
    }
    Ok(if summary.drained {
        ExitCode::SUCCESS
    } else {
        super::exit::Exit::NotDrained.into()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(assigned: usize, received: u64, acked: u64, lag: i64) -> IdleView {
        IdleView {
            assigned,
            received,
            acked,
            lag,
        }
    }

    #[test]
    fn never_idle_before_an_assignment_and_fails_after_the_bound() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let mut w = IdleWatch::new(s(10), s(300), t0);
        // Nothing assigned, nothing read: the old code stopped with success here.
        for t in [1, 26, 60, 299] {
            assert_eq!(w.step(view(0, 0, 0, 0), t0 + s(t)), None, "at {t} s");
        }
        assert_eq!(w.step(view(0, 0, 0, 0), t0 + s(300)), Some(IdleEnd::NeverAssigned));
    }

    #[test]
    fn idle_only_once_assigned_caught_up_and_quiet() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let mut w = IdleWatch::new(s(10), s(300), t0);
        assert_eq!(w.step(view(0, 0, 0, 0), t0 + s(100)), None);
        // Assigned at 100 s: idle time counts from there.
        assert_eq!(w.step(view(3, 50, 50, 13_000), t0 + s(101)), None);
        // Quiet for long but lag is not 0 (e.g. backpressure): not idle.
        assert_eq!(w.step(view(3, 50, 50, 13_000), t0 + s(200)), None);
        assert_eq!(w.step(view(3, 13_050, 13_000, 0), t0 + s(210)), None);
        // Caught up but in flight: not idle.
        assert_eq!(w.step(view(3, 13_050, 13_000, 0), t0 + s(215)), None);
        assert_eq!(w.step(view(3, 13_050, 13_050, 0), t0 + s(219)), None);
        assert_eq!(w.step(view(3, 13_050, 13_050, 0), t0 + s(221)), Some(IdleEnd::Idle));
    }

    #[test]
    fn an_empty_topic_ends_the_run_after_the_settle_time() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let mut w = IdleWatch::new(s(5), s(300), t0);
        assert_eq!(w.step(view(2, 0, 0, 0), t0 + s(20)), None);
        assert_eq!(w.step(view(2, 0, 0, 0), t0 + s(34)), None);
        assert_eq!(w.step(view(2, 0, 0, 0), t0 + s(35)), Some(IdleEnd::Idle));
    }
}
