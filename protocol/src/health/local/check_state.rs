//! The one place that names the status rules' types (`health::status`), so a change of
//! their interface is absorbed here and nowhere else.

pub use crate::health::status::{should_reap, Change, CheckState};
