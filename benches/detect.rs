//! Detector throughput: events/s through `Detector::push` with 384-dim
//! embeddings, on a generated 12-day scenario (battery wave injected).
//!
//! The bank's texts are scored with random unit embeddings (seeded, one per
//! text, 384 dims) so the bench needs no model files; the detector's cost
//! does not depend on what the embeddings mean. Named `cpu/detect/...`.

use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use earshot::detect::{DetectConfig, Detector};
use earshot::types::{Category, Scored, Sentiment, SentimentProbs};
use earshot_core::rng::Rng;
use earshot_scenario::{self as scenario, Bank, BankText, Incident, Role, Scenario};

fn synthetic_bank() -> Bank {
    let mut rng = Rng::new(42);
    let langs = ["en", "de", "fr", "es", "zh", "ja"];
    let roles = [
        (Role::Positive, 40),
        (Role::Neutral, 5),
        (Role::Negative, 80),
        (Role::Battery, 40),
        (Role::Logistics, 20),
        (Role::Spam, 8),
    ];
    let mut texts = Vec::new();
    for (role, n) in roles {
        // One topic direction per role, plus noise per text.
        let topic: Vec<f32> = (0..384).map(|_| rng.normal() as f32).collect();
        for lang in langs {
            for i in 0..n {
                let mut e: Vec<f32> = topic.iter().map(|t| t * 0.5 + rng.normal() as f32).collect();
                let norm = e.iter().map(|x| x * x).sum::<f32>().sqrt();
                e.iter_mut().for_each(|x| *x /= norm);
                let neg = !matches!(role, Role::Positive | Role::Neutral);
                let probs = if neg {
                    SentimentProbs {
                        negative: 0.9,
                        neutral: 0.07,
                        positive: 0.03,
                    }
                } else {
                    SentimentProbs {
                        negative: 0.03,
                        neutral: 0.07,
                        positive: 0.9,
                    }
                };
                texts.push(BankText {
                    role,
                    lang: lang.to_string(),
                    text: format!(
                        "{role:?} review number {i} in {lang}: the item was {}",
                        ["fine", "late", "hot", "broken"][i % 4]
                    ),
                    scored: Scored {
                        sentiment: if neg { Sentiment::Negative } else { Sentiment::Positive },
                        probs,
                        category: Category::ALL[i % 5],
                        category_score: 0.5,
                        lang: lang.to_string(),
                        tokens: 20,
                        truncated: false,
                        embedding: e,
                    },
                });
            }
        }
    }
    Bank { texts }
}

fn bench(c: &mut Criterion) {
    let bank = synthetic_bank();
    let events = scenario::generate(&Scenario::new(1, Incident::BatteryWave), &bank).events;
    let cfg = DetectConfig::default();
    let mut group = c.benchmark_group("cpu/detect");
    group.sample_size(10).measurement_time(Duration::from_secs(10));
    group.throughput(Throughput::Elements(events.len() as u64));
    group.bench_function(format!("push_{}_events_384d", events.len()), |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let mut det = Detector::new(cfg.clone());
                let start = Instant::now();
                for ev in &events {
                    std::hint::black_box(det.push(ev).expect("push"));
                }
                total += start.elapsed();
            }
            total
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
