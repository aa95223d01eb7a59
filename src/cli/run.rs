//! `earshot run`: the long-running engine on a Kafka consumer group.

use std::process::ExitCode;
use std::sync::Arc;

use clap::Args;
use earshot::pipeline::{engine, PipelineStats};

use super::ModelArgs;

#[derive(Args)]
pub struct RunArgs {
    #[command(flatten)]
    model: ModelArgs,
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
    let cfg = args.model.load_config()?;
    super::require_model_files(&cfg)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(std::thread::available_parallelism().map_or(2, |n| n.get()).max(2))
        .enable_all()
        .build()?;
    let stats = Arc::new(PipelineStats::default());
    let summary = rt.block_on(engine::run_kafka(
        cfg,
        &args.model.device,
        stats,
        shutdown_signal(),
        |alert| println!("ALERT {}", alert.summary),
    ))?;
    tracing::info!(?summary, "stopped");
    Ok(if summary.drained {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(3)
    })
}
