//! `earshot produce`: load a JSONL file into a Kafka topic (demo data,
//! back-fills, tests). Each line becomes one message, keyed by a field so all
//! of a brand's events land in one partition (what the detector expects).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use earshot::config::Config;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::util::Timeout;

#[derive(Args)]
pub struct ProduceArgs {
    /// JSONL file, one message per line.
    file: PathBuf,
    /// Target topic.
    #[arg(long)]
    topic: String,
    /// Bootstrap servers (default: `kafka.brokers` of --config, else 127.0.0.1:9092).
    #[arg(long, env = "EARSHOT_BROKERS")]
    brokers: Option<String>,
    /// Config whose `[kafka]` section (brokers, TLS/SASL properties) is used.
    #[arg(long, short, env = "EARSHOT_CONFIG")]
    config: Option<PathBuf>,
    /// Top-level JSON field whose value is the message key.
    #[arg(long, default_value = "brand")]
    key_field: String,
    /// Create the topic with this many partitions if it does not exist.
    #[arg(long, default_value_t = 6)]
    partitions: i32,
    /// Delete and re-create the topic first (demo resets).
    #[arg(long)]
    recreate: bool,
}

pub fn run(args: ProduceArgs) -> anyhow::Result<ExitCode> {
    let mut kafka = match &args.config {
        Some(p) => {
            Config::from_file(p)
                .with_context(|| format!("failed to load config {}", p.display()))?
                .kafka
        }
        None => Config::default_in(std::path::Path::new(".")).kafka,
    };
    if let Some(b) = &args.brokers {
        kafka.brokers = b.clone();
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async {
        let admin: AdminClient<_> = earshot::ingest::kafka::client_config(&kafka)
            .create()
            .context("failed to create kafka admin client")?;
        let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
        if args.recreate {
            let _ = admin.delete_topics(&[args.topic.as_str()], &opts).await;
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        let topic = NewTopic::new(&args.topic, args.partitions, TopicReplication::Fixed(1));
        for r in admin
            .create_topics([&topic], &opts)
            .await
            .context("failed to create topic")?
        {
            match r {
                Ok(_) => {}
                Err((_, rdkafka::types::RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((t, e)) => anyhow::bail!("failed to create topic {t}: {e}"),
            }
        }
        let producer: FutureProducer = earshot::ingest::kafka::producer(&kafka).context("failed to create producer")?;
        let data = std::fs::read(&args.file).with_context(|| format!("failed to read {}", args.file.display()))?;
        let mut sends = Vec::new();
        for line in data
            .split(|b| *b == b'\n')
            .filter(|l| !l.iter().all(u8::is_ascii_whitespace))
        {
            let key = serde_json::from_slice::<serde_json::Value>(line)
                .ok()
                .and_then(|v| v.get(&args.key_field).and_then(|k| k.as_str().map(str::to_string)))
                .unwrap_or_default();
            let (producer, topic, line) = (producer.clone(), args.topic.clone(), line.to_vec());
            sends.push(async move {
                producer
                    .send(FutureRecord::to(&topic).key(&key).payload(&line), Timeout::Never)
                    .await
                    .map(|_| ())
                    .map_err(|(e, _)| e)
            });
        }
        let n = sends.len();
        for r in futures::future::join_all(sends).await {
            r.context("produce failed")?;
        }
        eprintln!(
            "produced {n} messages to {} ({} partitions)",
            args.topic, args.partitions
        );
        Ok::<_, anyhow::Error>(())
    })?;
    Ok(ExitCode::SUCCESS)
}
