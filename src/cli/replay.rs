//! `earshot replay`: a finite input (files or a Kafka time range) through the
//! live engine's pipeline and detector, as fast as possible; writes
//! `alerts.jsonl`, `windows.csv` and `report.html` to `--out`. Never commits
//! offsets; delivers alerts (Kafka alerts topic and alert endpoints) only with `--sink`.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use earshot::ingest::kafka::KafkaRange;
use earshot::pipeline::PipelineStats;
use earshot::replay::{self, report, Progress};

use super::ModelArgs;

#[derive(Args)]
pub struct ReplayArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// JSONL or CSV files (by extension), read in order.
    files: Vec<PathBuf>,
    /// Replay a Kafka topic instead of files.
    #[arg(long, conflicts_with = "files")]
    topic: Option<String>,
    /// Start of the range (broker timestamp): RFC 3339, epoch ms, or relative (-7d, -12h).
    #[arg(long, requires = "topic", allow_hyphen_values = true)]
    from: Option<String>,
    /// End of the range (exclusive); default: the end of the topic.
    #[arg(long, requires = "topic", allow_hyphen_values = true)]
    to: Option<String>,
    /// Output directory (created): alerts.jsonl, windows.csv, report.html.
    #[arg(long)]
    out: PathBuf,
    /// Incident windows (JSONL or CSV: start, end, key) to compute precision, recall and delay.
    #[arg(long)]
    incidents: Option<PathBuf>,
    /// Also deliver the alerts: to `output.alerts_topic` and to every `[[alert.sinks]]`
    /// endpoint through the outbox (off by default: a replay must not page anyone).
    #[arg(long)]
    sink: bool,
}

/// Outbox entries for the alerts that are not silenced.
fn outbox_entries(alerts: &[earshot::alert::AlertOut]) -> Vec<earshot::alert::outbox::Entry> {
    alerts
        .iter()
        .filter(|a| !a.silenced)
        .map(earshot::alert::outbox::Entry::from)
        .collect()
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Progress bar on a terminal, a log line every 5 s otherwise.
fn spawn_progress(
    stats: Arc<PipelineStats>,
    progress: Arc<Progress>,
    stop: Arc<std::sync::atomic::AtomicBool>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let tty = std::io::stderr().is_terminal();
        let bar = tty.then(|| {
            let b = indicatif::ProgressBar::new(1000);
            b.set_style(
                indicatif::ProgressStyle::with_template("{bar:40} {percent:>3}% ETA {eta} · {msg}")
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            b
        });
        let start = Instant::now();
        let mut last_log = Instant::now();
        while !stop.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(200));
            let events = stats.scored.load(Ordering::Relaxed) + stats.dead_lettered.load(Ordering::Relaxed);
            let rate = events as f64 / start.elapsed().as_secs_f64().max(1e-3);
            // The reader runs ahead of scoring by up to the pipeline's
            // buffers, so progress is events finished out of the events the
            // input will hold (estimated from what was read so far).
            let (read_units, total) = (
                progress.done_units.load(Ordering::Relaxed),
                progress.total_units.load(Ordering::Relaxed),
            );
            let received = stats.received.load(Ordering::Relaxed);
            let expected = (read_units > 0).then(|| (received as f64 * total as f64 / read_units as f64).max(1.0));
            let (done, total) = match expected {
                Some(e) => (((events as f64 / e) * 1e6) as u64, 1_000_000u64),
                None => (0, total),
            };
            let t = progress.event_time.load(Ordering::Relaxed);
            let at = if t > 0 { report::rfc3339(t) } else { "-".into() };
            let msg = format!("{events} events · {rate:.0} events/s · event time {at}");
            match &bar {
                Some(b) => {
                    if let Some(p) = (done * 1000).checked_div(total) {
                        b.set_position(p);
                    }
                    b.set_message(msg);
                }
                None if last_log.elapsed() >= Duration::from_secs(5) => {
                    last_log = Instant::now();
                    let eta = (total > 0 && done > 0)
                        .then(|| start.elapsed().as_secs_f64() * (total.saturating_sub(done)) as f64 / done as f64);
                    tracing::info!(
                        events,
                        per_sec = format!("{rate:.0}"),
                        done_pct = (done * 100).checked_div(total).unwrap_or(0),
                        eta_s = eta.map_or(-1, |e| e as i64),
                        event_time = %at,
                        "replay progress"
                    );
                }
                None => {}
            }
        }
        if let Some(b) = bar {
            b.finish_and_clear();
        }
    })
}

pub fn run(args: ReplayArgs) -> anyhow::Result<ExitCode> {
    args.model.init_logging();
    let cfg = args.model.load_config()?;
    if args.files.is_empty() && args.topic.is_none() {
        anyhow::bail!("nothing to replay: give FILE... or --topic T [--from X] [--to Y]");
    }
    let incidents = match &args.incidents {
        Some(p) => Some(replay::read_incidents(p)?),
        None => None,
    };
    let now = now_ms();
    let from = args.from.as_deref().map(|s| replay::parse_time(s, now)).transpose()?;
    let to = args.to.as_deref().map(|s| replay::parse_time(s, now)).transpose()?;
    for f in &args.files {
        std::fs::metadata(f).with_context(|| format!("cannot read {}", f.display()))?;
    }
    std::fs::create_dir_all(&args.out).with_context(|| format!("cannot create {}", args.out.display()))?;
    let loaded = super::load_model(&args.model, &cfg)?;

    let progress = Arc::new(Progress::default());
    let (tx, rx) = tokio::sync::mpsc::channel(cfg.pipeline.channel_capacity);
    let (reader, inputs) = match &args.topic {
        Some(topic) => {
            let range = KafkaRange::open(&cfg.kafka, topic, from, to)
                .with_context(|| format!("failed to look up offsets of {topic}"))?;
            let total = range.total();
            if total == 0 {
                eprintln!(
                    "no data: topic {topic} has no messages between {} and {}",
                    from.map_or("the beginning".into(), report::rfc3339),
                    to.map_or("the end".into(), report::rfc3339)
                );
                return Ok(super::exit::Exit::NoData.into());
            }
            progress.total_units.store(total, Ordering::Relaxed);
            tracing::info!(topic, messages = total, ranges = ?range.ranges(), "replaying kafka range");
            let stats_p = progress.clone();
            let h = std::thread::spawn(move || {
                let r = range.read(&tx, Duration::from_secs(30));
                stats_p.done_units.store(total, Ordering::Relaxed);
                r
            });
            let desc = format!(
                "kafka {topic} [{} .. {})",
                from.map_or("start".into(), report::rfc3339),
                to.map_or("end".into(), report::rfc3339)
            );
            (h, vec![desc])
        }
        None => (
            replay::spawn_files(args.files.clone(), tx, progress.clone()),
            args.files.iter().map(|p| p.display().to_string()).collect(),
        ),
    };

    let stats = Arc::new(PipelineStats::default());
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let bar = spawn_progress(stats.clone(), progress.clone(), stop.clone());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(std::thread::available_parallelism().map_or(2, |n| n.get()).max(2))
        .enable_all()
        .build()?;
    let start = Instant::now();
    let outcome = rt.block_on(replay::run(&cfg, loaded, rx, stats, progress, |_| {}));
    let elapsed = start.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    let _ = bar.join();
    let outcome = outcome.context("replay failed")?;
    reader
        .join()
        .map_err(|_| anyhow::anyhow!("input reader panicked"))?
        .context("failed to read the input")?;
    if outcome.received == 0 {
        eprintln!("no data: the input has no messages ({})", inputs.join(", "));
        return Ok(super::exit::Exit::NoData.into());
    }

    let views: Vec<replay::AlertView> = outcome.alerts.iter().map(replay::AlertView::of).collect();
    let scored = incidents
        .as_ref()
        .map(|inc| replay::score_incidents(&views, inc, cfg.detect.windows.iter().copied().max().unwrap_or(0)));
    let write = |name: &str, body: &str| -> anyhow::Result<()> {
        let p = args.out.join(name);
        std::fs::write(&p, body).with_context(|| format!("cannot write {}", p.display()))
    };
    write("alerts.jsonl", &replay::alerts_jsonl(&outcome.alerts))?;
    write("windows.csv", &replay::windows_csv(&outcome.observer, &views))?;
    let info = report::RunInfo {
        inputs: inputs.clone(),
        elapsed_s: elapsed,
        config: args
            .model
            .config
            .as_ref()
            .map_or("built-in default".into(), |p| p.display().to_string()),
    };
    write(
        "report.html",
        &report::html(&outcome, &info, incidents.as_deref().zip(scored.as_ref())),
    )?;

    if args.sink && !outcome.alerts.is_empty() {
        let producer = earshot::ingest::kafka::producer(&cfg.kafka).context("failed to create kafka producer")?;
        rt.block_on(async {
            for a in &outcome.alerts {
                let payload = serde_json::to_vec(&a.payload).unwrap_or_default();
                let rec = rdkafka::producer::FutureRecord::to(&cfg.output.alerts_topic)
                    .key(a.fingerprint.as_bytes())
                    .payload(&payload);
                producer
                    .send(rec, rdkafka::util::Timeout::Never)
                    .await
                    .map_err(|(e, _)| anyhow::anyhow!("failed to deliver an alert: {e}"))?;
            }
            anyhow::Ok(())
        })?;
        tracing::info!(alerts = outcome.alerts.len(), topic = %cfg.output.alerts_topic, "alerts delivered (--sink)");
        // And to the configured endpoints, through the same durable outbox
        // and delivery workers as the live engine (idempotency keys are
        // content-derived, so an endpoint that dedupes sees a live alert once).
        if !cfg.alert.sinks.is_empty() {
            let drain = std::time::Duration::from_millis(cfg.pipeline.drain_timeout_ms);
            let delivered = rt.block_on(async {
                let service = earshot::alert::service::AlertService::start(&cfg.alert)
                    .map_err(|e| anyhow::anyhow!(e).context("failed to start the alert stage"))?;
                if let Some(outbox) = service.outbox() {
                    let entries: Vec<_> = outbox_entries(&outcome.alerts);
                    outbox
                        .insert(entries)
                        .await
                        .context("failed to write the alert outbox")?;
                }
                let done = service.flush(drain).await;
                service.stop();
                anyhow::Ok(done)
            })?;
            if delivered {
                tracing::info!(
                    sinks = cfg.alert.sinks.len(),
                    "alerts delivered to the alert endpoints (--sink)"
                );
            } else {
                tracing::warn!(
                    outbox = %cfg.alert.outbox_path.display(),
                    "not every alert reached its endpoints within pipeline.drain_timeout_ms; \
                     they stay in the outbox and are sent by the next `earshot run` or `replay --sink`"
                );
            }
        }
    }

    let rate = outcome.received as f64 / elapsed.max(1e-9);
    eprintln!(
        "replayed {} events ({} unreadable/dead, {} too late) in {elapsed:.1} s ({rate:.0} events/s): {} alerts → {}",
        outcome.received,
        outcome.dead.len(),
        outcome.observer.too_late,
        outcome.alerts.len(),
        args.out.display()
    );
    if let Some(s) = &scored {
        eprintln!(
            "incidents: precision {} recall {} delays(min) {:?}",
            s.precision.map_or("-".into(), |p| format!("{p:.2}")),
            s.recall.map_or("-".into(), |p| format!("{p:.2}")),
            s.delays.iter().map(|d| d.map(|d| d / 60_000)).collect::<Vec<_>>()
        );
    }
    Ok(ExitCode::SUCCESS)
}
