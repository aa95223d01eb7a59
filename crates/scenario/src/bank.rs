//! The bank of scored texts scenarios draw from: texts by role (what they
//! are for: background sentiment, a complaint wave's theme, fakes) and
//! language, each with what the classifier says about it.

use earshot_core::rng::Rng;
use earshot_core::types::Scored;

/// What a bank text is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    Positive,
    Neutral,
    Negative,
    /// Coherent complaint wave: battery overheating.
    Battery,
    /// Delivery / logistics complaints.
    Logistics,
    /// Refund, return and customer-service complaints.
    AfterSales,
    /// Product-quality complaints of every kind (not one coherent defect).
    Quality,
    /// Near-duplicate fake reviews.
    Spam,
    /// Near-duplicate bought 5-star praise.
    FakePraise,
}

/// One text with what the classifier says about it.
#[derive(Debug, Clone)]
pub struct BankText {
    pub role: Role,
    pub lang: String,
    pub text: String,
    pub scored: Scored,
}

/// Texts by role and language.
#[derive(Debug, Clone, Default)]
pub struct Bank {
    pub texts: Vec<BankText>,
}

impl Bank {
    pub(crate) fn pick(&self, rng: &mut Rng, role: Role, lang: &str) -> Option<&BankText> {
        let same: Vec<&BankText> = self.texts.iter().filter(|t| t.role == role && t.lang == lang).collect();
        let pool = if same.is_empty() {
            self.texts.iter().filter(|t| t.role == role).collect()
        } else {
            same
        };
        if pool.is_empty() {
            None
        } else {
            Some(pool[rng.below(pool.len())])
        }
    }
}
