//! Where the generator reads each node's `/finalized` list, and what it does
//! about the finalizations a node has but never listed to it: those it forgot
//! (its finality window) before they were read, and those that came with a
//! snapshot it installed (state sync).

use std::collections::HashMap;

use testnet_node::api::FinalizedPage;

/// Where the generator reads one node's `/finalized` list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Cursor {
    pub(super) at: usize,
    /// The node's process start as its pages say (0: not heard yet).
    boot: u64,
    /// Snapshots the node installed, as its pages say.
    snapshots: u64,
    /// Read again from the start after a restart: what the node forgot
    /// before its first page then was read before the restart.
    reread: bool,
}

/// What one page says beyond its entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(super) struct Advance {
    /// Finalizations the node forgot before they were read.
    pub(super) unread: u64,
    /// The node's list was replaced since the last page: it restarted, or
    /// installed a snapshot (what it holds before its first entry now may
    /// never have been listed to us).
    pub(super) replaced: bool,
}

impl Advance {
    /// Whether the node may hold finalizations it will never list to us.
    pub(super) fn skipped(&self) -> bool {
        self.unread > 0 || self.replaced
    }
}

impl Cursor {
    pub(super) fn at(at: usize) -> Cursor {
        Cursor {
            at,
            boot: 0,
            snapshots: 0,
            reread: false,
        }
    }

    /// A node whose position was not known at the start (it did not answer):
    /// read from the start, and what it forgot before then is not unread.
    pub(super) fn unknown() -> Cursor {
        Cursor {
            reread: true,
            ..Cursor::at(0)
        }
    }

    /// Moves past `page`. A node that restarted rebuilt its list (from its
    /// log, then from its peers), maybe in another order: it is read again
    /// from the start (what was seen stays seen). So is one that installed a
    /// snapshot: its list is a peer's now.
    pub(super) fn advance(&mut self, page: &FinalizedPage) -> Advance {
        let rebuilt = self.boot != 0 && page.boot_ms != self.boot;
        let synced = self.boot != 0 && !rebuilt && page.snapshots != self.snapshots;
        self.boot = page.boot_ms;
        self.snapshots = page.snapshots;
        let unread = match rebuilt || synced || self.reread {
            true => 0,
            false => page.first.saturating_sub(self.at) as u64,
        };
        self.reread = rebuilt || synced;
        self.at = if rebuilt || synced { 0 } else { page.next };
        let replaced = rebuilt || synced;
        Advance { unread, replaced }
    }
}

/// When each node's list last skipped finalizations (it forgot some before
/// they were read, restarted, or installed a snapshot): a payment it never
/// listed (nor did any other node that misses it but skipped too), listed
/// final by the others, and final somewhere before that skip,
/// is held there unlisted if its ledger agrees with the others at the end.
/// It counts as final there at an unknown time (no latency sample, no bound
/// checked).
#[derive(Debug, Default)]
pub(super) struct Skips {
    last: HashMap<usize, u64>,
}

impl Skips {
    pub(super) fn record(&mut self, node: usize, seen: u64) {
        self.last.insert(node, seen);
    }

    /// The nodes that hold a payment unlisted (`at`: when each listed it):
    /// every node that did not list it, if each skipped after some node had
    /// listed it final (else none).
    pub(super) fn unlisted(&self, at: &[Option<u64>]) -> Vec<usize> {
        let Some(first) = at.iter().flatten().min() else {
            return Vec::new();
        };
        let missing: Vec<usize> = (0..at.len()).filter(|i| at[*i].is_none()).collect();
        let held = |i: &usize| self.last.get(i).is_some_and(|skip| first <= skip);
        match missing.iter().all(held) {
            true => missing,
            false => Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(first: usize, len: usize, boot: u64) -> FinalizedPage {
        FinalizedPage {
            entries: Vec::new(),
            next: first + len,
            first,
            total: first + len,
            boot_ms: boot,
            snapshots: 0,
        }
    }

    #[test]
    fn a_cursor_counts_what_a_node_forgot_before_it_was_read() {
        let mut c = Cursor::at(100);
        assert_eq!(c.advance(&page(100, 50, 7)).unread, 0, "read in time");
        assert_eq!(c.at, 150);
        assert_eq!(
            c.advance(&page(170, 10, 7)).unread,
            20,
            "20 forgotten unread"
        );
        assert_eq!(c.at, 180);
        // A restart: read again from 0; its forgotten past is not unread.
        let restarted = c.advance(&page(180, 5, 9));
        assert_eq!((restarted.unread, restarted.replaced), (0, true));
        assert_eq!(c.at, 0);
        assert_eq!(
            c.advance(&page(120, 70, 9)).unread,
            0,
            "re-read after the restart"
        );
        assert_eq!(
            c.advance(&page(195, 5, 9)).unread,
            5,
            "and counted again after"
        );
        let mut down = Cursor::unknown();
        assert_eq!(
            down.advance(&page(4_000, 10, 3)).unread,
            0,
            "down at the start"
        );
        assert_eq!(down.advance(&page(4_020, 10, 3)).unread, 10);
    }

    #[test]
    fn a_snapshot_installed_is_a_skip_and_the_list_is_read_again() {
        let mut c = Cursor::at(100);
        c.advance(&page(100, 10, 7));
        let synced = c.advance(&FinalizedPage {
            snapshots: 1,
            ..page(300, 40, 7)
        });
        assert_eq!((synced.replaced, synced.unread, c.at), (true, 0, 0));
        assert!(synced.skipped());
        let again = c.advance(&FinalizedPage {
            snapshots: 1,
            ..page(260, 80, 7)
        });
        assert!(!again.skipped(), "the new list read from its start");
        assert_eq!(c.at, 340);
    }

    #[test]
    fn only_payments_final_elsewhere_before_a_skip_are_held_unlisted() {
        let mut skips = Skips::default();
        assert!(
            skips.unlisted(&[Some(10), Some(12), None]).is_empty(),
            "no skip"
        );
        skips.record(2, 50);
        assert_eq!(skips.unlisted(&[Some(10), Some(12), None]), [2]);
        assert_eq!(
            skips.unlisted(&[Some(60), Some(90), None]),
            Vec::<usize>::new(),
            "after it"
        );
        assert_eq!(
            skips.unlisted(&[Some(10), Some(90), None]),
            [2],
            "final somewhere before"
        );
        assert!(
            skips.unlisted(&[Some(10), None, None]).is_empty(),
            "n1 never skipped"
        );
        skips.record(1, 40);
        assert_eq!(
            skips.unlisted(&[Some(10), None, None]),
            [1, 2],
            "both skipped"
        );
        assert!(
            skips.unlisted(&[None, None, None]).is_empty(),
            "listed nowhere"
        );
        assert!(
            skips.unlisted(&[Some(10), Some(11), Some(15)]).is_empty(),
            "listed"
        );
        assert!(
            skips.unlisted(&[None, Some(11), Some(15)]).is_empty(),
            "n0 never skipped"
        );
    }
}
