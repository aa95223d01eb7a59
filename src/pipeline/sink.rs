//! Where results go: Kafka topics (scored events, alerts, dead letters with
//! reason headers) or an in-memory collector (tests, replay). Each delivery
//! is a future that resolves once the broker has acknowledged the write.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::util::Timeout;

use super::{Dead, PipelineError};
use crate::alert::AlertOut;
use crate::config::OutputConfig;
use crate::types::ScoredEvent;

/// Everything a run produced, when collecting in memory.
#[derive(Debug, Default)]
pub struct Collected {
    pub scored: Vec<ScoredEvent>,
    pub dead: Vec<Dead>,
    pub alerts: Vec<AlertOut>,
}

#[derive(Clone)]
pub enum Sink {
    Kafka {
        producer: FutureProducer,
        output: OutputConfig,
        /// Bound on one write: queueing (a full producer queue) plus broker
        /// acknowledgement (`message.timeout.ms`, set to the same value).
        send_timeout: Duration,
        /// The durable alert outbox (when delivery endpoints are configured).
        outbox: Option<Arc<crate::alert::outbox::Outbox>>,
    },
    Memory(Arc<Mutex<Collected>>),
    /// Like `Memory` but drops scored events (replay of millions of events:
    /// keeps only alerts and dead letters).
    Discard(Arc<Mutex<Collected>>),
}

/// The scored-event record written to the output topic.
pub fn scored_json(se: &ScoredEvent, with_embedding: bool) -> serde_json::Value {
    let mut v = serde_json::to_value(&se.event).unwrap_or_default();
    let mut s = serde_json::to_value(&se.scored).unwrap_or_default();
    if !with_embedding {
        if let Some(o) = s.as_object_mut() {
            o.remove("embedding");
        }
    }
    if let Some(o) = v.as_object_mut() {
        o.remove("pos");
        o.insert("scored".into(), s);
    }
    v
}

async fn send(
    producer: FutureProducer,
    timeout: Duration,
    topic: String,
    key: Option<Vec<u8>>,
    payload: Vec<u8>,
    headers: Option<OwnedHeaders>,
) -> Result<(), PipelineError> {
    let mut rec = FutureRecord::to(&topic).payload(&payload);
    if let Some(k) = &key {
        rec = rec.key(k);
    }
    if let Some(h) = headers {
        rec = rec.headers(h);
    }
    producer
        .send(rec, Timeout::After(timeout))
        .await
        .map(|_| ())
        .map_err(|(e, _)| PipelineError::Delivery {
            topic: topic.clone(),
            source: Box::new(e),
        })
}

impl Sink {
    /// Delivers a scored event (if an output topic is set) and its alerts.
    pub fn deliver_scored(
        &self,
        se: &ScoredEvent,
        with_embedding: bool,
        alerts: &[AlertOut],
    ) -> BoxFuture<'static, Result<(), PipelineError>> {
        match self {
            Sink::Memory(c) => {
                let mut c = c.lock().unwrap_or_else(|e| e.into_inner());
                let mut se = se.clone();
                if !with_embedding {
                    se.scored.embedding.clear();
                }
                c.scored.push(se);
                c.alerts.extend(alerts.iter().cloned());
                Box::pin(async { Ok(()) })
            }
            Sink::Discard(c) => {
                if !alerts.is_empty() {
                    let mut c = c.lock().unwrap_or_else(|e| e.into_inner());
                    c.alerts.extend(alerts.iter().cloned());
                }
                Box::pin(async { Ok(()) })
            }
            Sink::Kafka {
                producer,
                output,
                send_timeout,
                outbox,
            } => {
                let mut sends = Vec::new();
                if let Some(topic) = &output.scored_topic {
                    let payload = serde_json::to_vec(&scored_json(se, with_embedding)).unwrap_or_default();
                    sends.push(send(
                        producer.clone(),
                        *send_timeout,
                        topic.clone(),
                        Some(se.event.id.clone().into_bytes()),
                        payload,
                        None,
                    ));
                }
                // Durable before the offset is stored: part of this future.
                let queued = outbox.as_ref().and_then(|ob| {
                    let entries: Vec<_> = alerts
                        .iter()
                        .filter(|a| !a.silenced)
                        .map(crate::alert::outbox::Entry::from)
                        .collect();
                    (!entries.is_empty()).then(|| ob.insert(entries))
                });
                for a in alerts {
                    tracing::info!(fingerprint = %a.fingerprint, status = a.status.as_str(), silenced = a.silenced,
                        "ALERT {}", a.summary);
                    sends.push(send(
                        producer.clone(),
                        *send_timeout,
                        output.alerts_topic.clone(),
                        Some(a.fingerprint.clone().into_bytes()),
                        serde_json::to_vec(&a.payload).unwrap_or_default(),
                        None,
                    ));
                }
                let alerts_topic = output.alerts_topic.clone();
                Box::pin(async move {
                    if let Some(q) = queued {
                        q.await.map_err(|e| PipelineError::Delivery {
                            topic: format!("alert outbox (alerts topic {alerts_topic})"),
                            source: Box::new(e),
                        })?;
                    }
                    for r in futures::future::join_all(sends).await {
                        r?;
                    }
                    Ok(())
                })
            }
        }
    }

    /// Delivers a dead letter: the original payload and key, with headers
    /// `earshot.reason` (stable code), `earshot.error` (message) and the source
    /// topic / partition / offset.
    pub fn deliver_dead(&self, dead: &Dead) -> BoxFuture<'static, Result<(), PipelineError>> {
        match self {
            Sink::Memory(c) | Sink::Discard(c) => {
                c.lock().unwrap_or_else(|e| e.into_inner()).dead.push(dead.clone());
                Box::pin(async { Ok(()) })
            }
            Sink::Kafka {
                producer,
                output,
                send_timeout,
                ..
            } => {
                let partition = dead.pos.partition.to_string();
                let offset = dead.pos.offset.to_string();
                let (payload, cut) = bounded_payload(dead.payload.as_deref(), output.dead_letter_max_bytes);
                let mut headers = OwnedHeaders::new()
                    .insert(Header {
                        key: "earshot.reason",
                        value: Some(dead.code),
                    })
                    .insert(Header {
                        key: "earshot.error",
                        value: Some(dead.message.as_str()),
                    })
                    .insert(Header {
                        key: "earshot.source.topic",
                        value: Some(dead.pos.source.as_str()),
                    })
                    .insert(Header {
                        key: "earshot.source.partition",
                        value: Some(partition.as_str()),
                    })
                    .insert(Header {
                        key: "earshot.source.offset",
                        value: Some(offset.as_str()),
                    });
                if let Some(original) = cut {
                    headers = headers.insert(Header {
                        key: "earshot.truncated",
                        value: Some(original.to_string().as_str()),
                    });
                }
                Box::pin(send(
                    producer.clone(),
                    *send_timeout,
                    output.dead_letter_topic.clone(),
                    dead.key.clone(),
                    payload,
                    Some(headers),
                ))
            }
        }
    }

    /// The producer's fatal error, if it had one (e.g. an idempotent
    /// producer's `OutOfOrderSequenceNumber` after a broker lost acknowledged
    /// writes): it cannot send anymore.
    pub fn producer_fatal(&self) -> Option<String> {
        match self {
            Sink::Kafka { producer, .. } => producer
                .client()
                .fatal_error()
                .map(|(code, reason)| format!("{code:?}: {reason}")),
            _ => None,
        }
    }

    /// Waits for queued producer messages (bounded).
    pub async fn flush(&self) {
        if let Sink::Kafka { producer, .. } = self {
            let p = producer.clone();
            let _ = tokio::task::spawn_blocking(move || p.flush(Duration::from_secs(30))).await;
        }
    }
}

/// A dead letter's payload cut to `max` bytes, and its original size when it
/// was cut: an oversize message must not fail its own dead-lettering (it would
/// stop the pipeline on the same offset after every restart).
fn bounded_payload(payload: Option<&[u8]>, max: usize) -> (Vec<u8>, Option<usize>) {
    let payload = payload.unwrap_or_default();
    if payload.len() <= max {
        (payload.to_vec(), None)
    } else {
        (payload[..max].to_vec(), Some(payload.len()))
    }
}

#[cfg(test)]
mod tests {
    use super::bounded_payload;

    #[test]
    fn dead_letter_payloads_are_cut_to_the_limit_with_the_original_size() {
        assert_eq!(bounded_payload(Some(b"abc"), 3), (b"abc".to_vec(), None));
        assert_eq!(bounded_payload(None, 3), (Vec::new(), None));
        let big = vec![b'x'; 2_000_000];
        let (cut, original) = bounded_payload(Some(&big), 900_000);
        assert_eq!((cut.len(), original), (900_000, Some(2_000_000)));
    }
}
