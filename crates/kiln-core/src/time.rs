//! One clock for the domain: UTC, truncated to microseconds so a timestamp
//! reads back equal from SQLite and PostgreSQL (whose precision is µs).

use chrono::{DateTime, SubsecRound, Utc};

pub type Timestamp = DateTime<Utc>;

pub fn now() -> Timestamp {
    Utc::now().trunc_subsecs(6)
}
