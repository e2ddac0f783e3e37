//! What the core's log and hard state hold that the disk has not been asked to hold yet,
//! gathered as they change and handed to the shell as one persist request
//! (`Raft::flush_persist`). One record rather than four loose flags, so the rules that
//! tie them together live in one place: a truncation cancels the unsent entries it
//! covers (the disk never saw them) and otherwise asks the disk to drop its own copies;
//! a snapshot reset cancels both, since the disk's whole log goes.

use crate::ids::LogIndex;

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(super) struct Unflushed {
    /// The hard state (term, vote) changed.
    pub(super) hard_state: bool,
    /// The first log entry not handed to the shell yet; it and every later entry are
    /// still in the core's log (not yet durable, so never evicted from its cache).
    pub(super) entries_from: Option<LogIndex>,
    /// The disk must drop its entries from this index on before writing new ones.
    pub(super) truncate_from: Option<LogIndex>,
    /// The disk must discard its whole log; the new one continues after this index (a
    /// snapshot replaced the log, or recovery found entries the snapshot covers).
    pub(super) reset_after: Option<LogIndex>,
}

impl Unflushed {
    /// Nothing to hand to the shell.
    pub(super) fn is_empty(&self) -> bool {
        *self == Unflushed::default()
    }

    pub(super) fn hard_state_changed(&mut self) {
        self.hard_state = true;
    }

    /// An entry was appended to the log at `index`.
    pub(super) fn appended(&mut self, index: LogIndex) {
        self.entries_from.get_or_insert(index);
    }

    /// The log dropped its entries from `from` on.
    pub(super) fn truncated(&mut self, from: LogIndex) {
        match self.entries_from {
            // Only entries the disk never saw go: nothing to undo there.
            Some(unsent) if unsent < from => {}
            _ => {
                self.entries_from = None;
                let lowest = self.truncate_from.map_or(from, |t| t.min(from));
                self.truncate_from = Some(lowest);
            }
        }
    }

    /// The log was replaced by a snapshot ending at `after`.
    pub(super) fn reset(&mut self, after: LogIndex) {
        self.entries_from = None;
        self.truncate_from = None;
        self.reset_after = Some(after);
    }

    /// Whether the disk's log still differs from the core's (new entries or a
    /// truncation not handed over yet), so nothing past the durable index is on disk.
    pub(super) fn log_differs(&self) -> bool {
        self.entries_from.is_some() || self.truncate_from.is_some()
    }

    /// Everything gathered, leaving nothing behind.
    pub(super) fn take(&mut self) -> Unflushed {
        std::mem::take(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appends_keep_the_first_unsent_index() {
        let mut u = Unflushed::default();
        assert!(u.is_empty());
        u.appended(LogIndex(5));
        u.appended(LogIndex(6));
        assert_eq!(u.entries_from, Some(LogIndex(5)));
        assert!(u.log_differs());
        assert_eq!(u.take().entries_from, Some(LogIndex(5)));
        assert!(u.is_empty());
    }

    #[test]
    fn truncating_only_unsent_entries_asks_nothing_of_the_disk() {
        let mut u = Unflushed::default();
        u.appended(LogIndex(5));
        u.truncated(LogIndex(7));
        assert_eq!(u.entries_from, Some(LogIndex(5)));
        assert_eq!(u.truncate_from, None);
    }

    #[test]
    fn truncating_sent_entries_asks_the_disk_and_keeps_the_lowest_point() {
        let mut u = Unflushed::default();
        u.appended(LogIndex(5));
        u.truncated(LogIndex(4));
        assert_eq!(u.entries_from, None);
        assert_eq!(u.truncate_from, Some(LogIndex(4)));
        u.truncated(LogIndex(6));
        assert_eq!(u.truncate_from, Some(LogIndex(4)));
        u.truncated(LogIndex(2));
        assert_eq!(u.truncate_from, Some(LogIndex(2)));
        // Entries appended after the truncation are written after it.
        u.appended(LogIndex(2));
        assert_eq!(u.entries_from, Some(LogIndex(2)));
        assert!(u.log_differs());
    }

    #[test]
    fn a_reset_cancels_entries_and_truncations_but_not_the_hard_state() {
        let mut u = Unflushed::default();
        u.hard_state_changed();
        u.appended(LogIndex(3));
        u.truncated(LogIndex(2));
        u.reset(LogIndex(10));
        assert_eq!(
            u,
            Unflushed {
                hard_state: true,
                entries_from: None,
                truncate_from: None,
                reset_after: Some(LogIndex(10)),
            }
        );
        assert!(!u.log_differs());
        u.appended(LogIndex(11));
        assert_eq!(u.take().entries_from, Some(LogIndex(11)));
    }
}
