//! earshot-core: the domain types every stage shares (what flows from a
//! source to a sink), event-time text, and a seeded random source. Depends on
//! no other earshot crate.

pub mod hash;
pub mod rng;
pub mod time;
pub mod types;
