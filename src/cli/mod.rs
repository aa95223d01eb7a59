//! Subcommands. Each one is a function taking its parsed arguments; errors are
//! `anyhow` with lower-case context and end up printed by `main`.

mod adapt;
mod category;
mod classify;
mod data;
mod exemplars;
pub mod exit;
mod produce;
mod replay;
mod run;
mod train;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use earshot::config::Config;
use earshot::model::MatmulMode;

#[derive(Parser)]
#[command(
    name = "earshot",
    version,
    about = "Hear complaint waves before they become a crisis",
    after_help = exit::HELP
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Classify texts (arguments, or JSONL on stdin) and print JSONL or a table.
    Classify(classify::ClassifyArgs),
    /// Run the engine: consume a Kafka topic, score, detect, produce alerts.
    Run(run::RunArgs),
    /// Load a JSONL file into a Kafka topic (demo data, back-fills).
    Produce(produce::ProduceArgs),
    /// Replay files or a Kafka time range through the detector; write alerts, window stats and an HTML report.
    Replay(replay::ReplayArgs),
    /// Train the sentiment head and build the category head from labelled data.
    TrainHead(train::TrainArgs),
    /// Report per-language accuracy of the heads on a labelled JSONL file.
    Eval(train::EvalArgs),
    /// Adapt the encoder's top layers (LoRA) and train the three-class sentiment head.
    TrainAdapter(adapt::AdaptArgs),
    /// Refine the complaint-category head on labelled complaints.
    TrainCategory(category::CategoryArgs),
    /// Keep labelled training texts in the sentiment head as exemplars whose nearest neighbours vote.
    TrainExemplars(exemplars::ExemplarArgs),
}

/// Options shared by every command that loads the model.
#[derive(Args, Clone)]
pub struct ModelArgs {
    /// Pipeline config (TOML). Without it, the built-in default reads the
    /// model from ./models (run scripts/setup.sh first).
    #[arg(long, short, env = "EARSHOT_CONFIG")]
    pub config: Option<PathBuf>,
    /// Where inference runs: cpu, cuda or cuda:N (needs a `--features cuda` build).
    #[arg(long, env = "EARSHOT_DEVICE", default_value = "cpu")]
    pub device: String,
    /// Override `model.matmul` from the config: auto, int8, f32 or q4.
    #[arg(long, env = "EARSHOT_MATMUL")]
    pub matmul: Option<MatmulMode>,
    /// Threads the int8 encoder computes on (0: one per core).
    #[arg(long, env = "EARSHOT_THREADS", default_value_t = 0)]
    pub threads: usize,
    /// Log filter (tracing EnvFilter syntax), e.g. `info` or `earshot=debug`.
    #[arg(long, env = "EARSHOT_LOG", default_value = "info")]
    pub log: String,
}

impl ModelArgs {
    pub fn load_config(&self) -> anyhow::Result<Config> {
        let mut cfg = match &self.config {
            Some(path) => {
                Config::from_file(path).with_context(|| format!("failed to load config {}", path.display()))?
            }
            None => Config::default_in(&std::env::current_dir().context("no current directory")?),
        };
        if let Some(m) = self.matmul {
            cfg.model.matmul = m;
        }
        cfg.model.threads = self.threads;
        Ok(cfg)
    }

    pub fn init_logging(&self) {
        let filter = tracing_subscriber::EnvFilter::try_new(&self.log)
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .try_init();
    }
}

pub fn run() -> anyhow::Result<ExitCode> {
    let cli = Cli::parse();
    match cli.command {
        Command::Classify(a) => classify::run(a),
        Command::Run(a) => run::run(a),
        Command::Produce(a) => produce::run(a),
        Command::Replay(a) => replay::run(a),
        Command::TrainHead(a) => train::run_train(a),
        Command::Eval(a) => train::run_eval(a),
        Command::TrainAdapter(a) => adapt::run(a),
        Command::TrainCategory(a) => category::run(a),
        Command::TrainExemplars(a) => exemplars::run(a),
    }
}

/// Loads the model described by the config on the requested device, with a
/// message that tells the user how to get missing files.
pub fn load_model(args: &ModelArgs, cfg: &Config) -> anyhow::Result<earshot::model::Loaded> {
    let device = earshot::model::parse_device(&args.device).context("invalid --device")?;
    require_model_files(cfg)?;
    let loaded = earshot::model::load(&cfg.model, &device).context("failed to load the model")?;
    let (sentiment_exemplars, category_exemplars) = loaded.classifier.exemplar_counts();
    tracing::info!(
        model = %earshot::model::Classifier::describe(&loaded.classifier),
        device = %args.device,
        matmul = loaded.classifier.encoder().mode().as_str(),
        sentiment_exemplars,
        category_exemplars,
        load_ms = loaded.load_time.as_millis() as u64,
        "model loaded"
    );
    Ok(loaded)
}

/// Fails with the fix when the fetched model files are missing.
pub fn require_model_files(cfg: &Config) -> anyhow::Result<()> {
    let mut files = vec![&cfg.model.tokenizer];
    if let earshot::model::EncoderSpec::E5s1 { weights } = &cfg.model.encoder {
        files.push(weights);
    }
    for f in files {
        if !f.exists() {
            anyhow::bail!(
                "model file {} not found; run `bash scripts/setup.sh` to fetch and verify it",
                f.display()
            );
        }
    }
    Ok(())
}
