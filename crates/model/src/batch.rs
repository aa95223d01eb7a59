//! Token-budget batching: group texts of similar length, cut batches so that
//! padded tokens (`batch * longest`) stay under a budget and a request cap.
//!
//! Sorting by length before cutting keeps padding near 1.1x the real tokens on
//! review-like length distributions; arrival-order batches pad several times more.

use super::tokenize::Encoded;

/// A padded batch ready for the encoder: one row per window; a text cut
/// into several windows (see [`crate::tokenize`]) takes consecutive rows.
#[derive(Debug, Clone, PartialEq)]
pub struct EncodedBatch {
    /// Row-major `[batch, seq]` token ids; padding uses `pad_id`.
    pub ids: Vec<u32>,
    /// 1.0 for real tokens, 0.0 for padding, same shape as `ids`.
    pub mask: Vec<f32>,
    /// Rows (windows).
    pub batch: usize,
    pub seq: usize,
    /// Real (unpadded) tokens in the batch.
    pub real_tokens: usize,
    /// Rows of each text, in order; they sum to `batch`.
    pub rows_per_text: Vec<usize>,
}

impl EncodedBatch {
    /// One row per window of `items`, padded to the longest window.
    pub fn pack<'a>(items: impl IntoIterator<Item = &'a Encoded>, pad_id: u32) -> Self {
        let items: Vec<&Encoded> = items.into_iter().collect();
        let seq = items.iter().flat_map(|e| e.windows.iter().copied()).max().unwrap_or(0);
        let rows_per_text: Vec<usize> = items.iter().map(|e| e.windows.len()).collect();
        let batch = rows_per_text.iter().sum();
        let mut ids = Vec::with_capacity(batch * seq);
        let mut mask = Vec::with_capacity(batch * seq);
        let mut real_tokens = 0;
        for w in items.iter().flat_map(|e| e.window_ids()) {
            real_tokens += w.len();
            ids.extend_from_slice(w);
            mask.extend(std::iter::repeat_n(1.0f32, w.len()));
            ids.extend(std::iter::repeat_n(pad_id, seq - w.len()));
            mask.extend(std::iter::repeat_n(0.0f32, seq - w.len()));
        }
        Self {
            ids,
            mask,
            batch,
            seq,
            real_tokens,
            rows_per_text,
        }
    }

    /// Texts in the batch.
    pub fn texts(&self) -> usize {
        self.rows_per_text.len()
    }

    /// Padded tokens the encoder will process.
    pub fn padded_tokens(&self) -> usize {
        self.batch * self.seq
    }

    /// Real tokens of row `r`.
    pub fn row_tokens(&self, r: usize) -> usize {
        let mask = &self.mask[r * self.seq..(r + 1) * self.seq];
        mask.iter().take_while(|&&m| m > 0.0).count()
    }

    /// Folds one unit vector per row into one per text: the windows of a
    /// text averaged, weighted by their real tokens, and L2-normalised (a
    /// text of one window keeps its row unchanged).
    pub fn pool_texts(&self, rows: Vec<Vec<f32>>) -> Vec<Vec<f32>> {
        if self.rows_per_text.iter().all(|&n| n == 1) {
            return rows;
        }
        let mut out = Vec::with_capacity(self.texts());
        let mut rows = rows.into_iter().enumerate();
        for &n in &self.rows_per_text {
            let mut acc: Option<Vec<f32>> = None;
            for (r, row) in rows.by_ref().take(n) {
                let w = self.row_tokens(r) as f32;
                match acc.as_mut() {
                    None => acc = Some(row.into_iter().map(|x| x * w).collect()),
                    Some(a) => a.iter_mut().zip(row).for_each(|(a, x)| *a += x * w),
                }
            }
            let mut v = acc.unwrap_or_default();
            let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
            if norm > 0.0 {
                v.iter_mut().for_each(|x| *x /= norm);
            }
            out.push(v);
        }
        out
    }
}

/// Limits for cutting batches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchLimits {
    /// Maximum padded tokens (`batch * longest`) in one batch.
    pub max_tokens: usize,
    /// Maximum texts in one batch.
    pub max_batch: usize,
}

/// Plans batches over `lengths` (token counts): returns groups of indices,
/// each within `limits`, shortest texts first. A single text longer than the
/// budget gets a batch of its own.
pub fn plan(lengths: &[usize], limits: BatchLimits) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..lengths.len()).collect();
    order.sort_by_key(|&i| (lengths[i], i));
    let mut out = Vec::new();
    let mut cur: Vec<usize> = Vec::new();
    for i in order {
        // Sorted ascending, so this text is the longest of the batch if added.
        let longest = lengths[i];
        let fits = cur.len() < limits.max_batch.max(1) && (cur.len() + 1) * longest <= limits.max_tokens.max(1);
        if !fits && !cur.is_empty() {
            out.push(std::mem::take(&mut cur));
        }
        cur.push(i);
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pack_pads_and_masks() {
        let a = Encoded::single(vec![0, 5, 2], false);
        let b = Encoded::single(vec![0, 2], false);
        let bt = EncodedBatch::pack([&a, &b], 1);
        assert_eq!((bt.batch, bt.seq, bt.real_tokens), (2, 3, 5));
        assert_eq!(bt.ids, vec![0, 5, 2, 0, 2, 1]);
        assert_eq!(bt.mask, vec![1., 1., 1., 1., 1., 0.]);
        assert_eq!(bt.rows_per_text, vec![1, 1]);
    }

    #[test]
    fn windows_take_consecutive_rows_and_pool_back_to_one_vector_per_text() {
        // Text a: windows of 3 and 2 tokens; text b: one window of 2.
        let a = Encoded {
            ids: vec![0, 5, 2, 0, 2],
            truncated: false,
            windows: vec![3, 2],
        };
        let b = Encoded::single(vec![0, 2], false);
        let bt = EncodedBatch::pack([&a, &b], 1);
        assert_eq!((bt.batch, bt.seq, bt.real_tokens, bt.texts()), (3, 3, 7, 2));
        assert_eq!(bt.ids, vec![0, 5, 2, 0, 2, 1, 0, 2, 1]);
        assert_eq!((bt.row_tokens(0), bt.row_tokens(1), bt.row_tokens(2)), (3, 2, 2));
        let pooled = bt.pool_texts(vec![vec![1.0, 0.0], vec![0.0, 1.0], vec![0.6, 0.8]]);
        assert_eq!(pooled.len(), 2);
        // (3·[1,0] + 2·[0,1]) / |..| = [3, 2] / √13
        let s = 13f32.sqrt();
        assert!((pooled[0][0] - 3.0 / s).abs() < 1e-6 && (pooled[0][1] - 2.0 / s).abs() < 1e-6);
        assert_eq!(pooled[1], vec![0.6, 0.8]);
    }

    #[test]
    fn plan_respects_budget_and_covers_everything() {
        let lengths = [10, 200, 12, 11, 50, 600, 9];
        let limits = BatchLimits {
            max_tokens: 64,
            max_batch: 3,
        };
        let batches = plan(&lengths, limits);
        let mut seen: Vec<usize> = batches.iter().flatten().copied().collect();
        seen.sort();
        assert_eq!(seen, (0..lengths.len()).collect::<Vec<_>>());
        for b in &batches {
            let longest = b.iter().map(|&i| lengths[i]).max().unwrap();
            assert!(b.len() <= 3);
            assert!(b.len() == 1 || b.len() * longest <= 64, "{b:?}");
        }
        // Similar lengths are grouped together.
        assert_eq!(batches[0], vec![6, 0, 3]);
    }
}
