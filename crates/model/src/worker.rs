//! The inference thread: owns one [`Classifier`] and answers batches sent over
//! a bounded channel. Replies are callbacks so that async callers can complete
//! their own future type without this module knowing about any runtime.

use std::sync::mpsc::{sync_channel, SyncSender};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::{Classifier, EncodedBatch, Inference, ModelError};

/// Result of one batch plus what the caller needs for metrics.
#[derive(Debug)]
pub struct BatchOutput {
    pub results: Vec<Inference>,
    /// Time spent in the model (forward + heads).
    pub compute: Duration,
    /// Time the batch waited in the thread's queue.
    pub queued: Duration,
    pub batch: usize,
    pub real_tokens: usize,
    pub padded_tokens: usize,
}

/// Called on the inference thread with the batch's outcome.
pub type Reply = Box<dyn FnOnce(Result<BatchOutput, ModelError>) + Send>;

struct Job {
    batch: EncodedBatch,
    reply: Reply,
    sent: Instant,
}

/// Handle to the inference thread. Dropping it drains the queue and joins.
pub struct ClassifierThread {
    tx: Option<SyncSender<Job>>,
    handle: Option<JoinHandle<()>>,
    embedding_dim: usize,
    description: String,
}

impl ClassifierThread {
    /// Starts the thread; `queue` batches may wait before `submit` blocks.
    pub fn spawn(mut classifier: Box<dyn Classifier>, queue: usize) -> Self {
        let embedding_dim = classifier.embedding_dim();
        let description = classifier.describe();
        let (tx, rx) = sync_channel::<Job>(queue.max(1));
        let handle = std::thread::Builder::new()
            .name("earshot-inference".into())
            .spawn(move || {
                for job in rx {
                    let queued = job.sent.elapsed();
                    let start = Instant::now();
                    let out = classifier.classify(&job.batch).map(|results| BatchOutput {
                        results,
                        compute: start.elapsed(),
                        queued,
                        batch: job.batch.texts(),
                        real_tokens: job.batch.real_tokens,
                        padded_tokens: job.batch.padded_tokens(),
                    });
                    (job.reply)(out);
                }
            })
            .expect("failed to spawn the inference thread");
        Self {
            tx: Some(tx),
            handle: Some(handle),
            embedding_dim,
            description,
        }
    }

    pub fn embedding_dim(&self) -> usize {
        self.embedding_dim
    }

    pub fn describe(&self) -> &str {
        &self.description
    }

    /// Queues a batch, blocking while the queue is full (backpressure).
    pub fn submit(&self, batch: EncodedBatch, reply: Reply) -> Result<(), ModelError> {
        let tx = self.tx.as_ref().ok_or(ModelError::WorkerGone)?;
        tx.send(Job {
            batch,
            reply,
            sent: Instant::now(),
        })
        .map_err(|_| ModelError::WorkerGone)
    }

    /// Classifies one batch and waits for the answer.
    pub fn classify(&self, batch: EncodedBatch) -> Result<BatchOutput, ModelError> {
        let (tx, rx) = std::sync::mpsc::channel();
        self.submit(
            batch,
            Box::new(move |r| {
                let _ = tx.send(r);
            }),
        )?;
        rx.recv().map_err(|_| ModelError::WorkerGone)?
    }
}

impl Drop for ClassifierThread {
    fn drop(&mut self) {
        // Closing the channel lets the thread finish queued work and exit.
        self.tx.take();
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}
