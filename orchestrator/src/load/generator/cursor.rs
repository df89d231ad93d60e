//! Where the generator reads each node's `/finalized` list, and what it does
//! about the finalizations a node has but never listed to it: those it forgot
//! (its finality window) before they were read, and those that came with a
//! snapshot it installed (state sync).

use std::collections::{HashMap, HashSet};

use testnet_node::api::FinalizedPage;
use testnet_node::ledger::tx::TxId;

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
    /// The node installed a snapshot since the last page: what it holds
    /// before its first entry now came with it, unlisted.
    pub(super) synced: bool,
}

impl Advance {
    /// Whether the node holds finalizations it will never list to us.
    pub(super) fn skipped(&self) -> bool {
        self.unread > 0 || self.synced
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
        Advance { unread, synced }
    }
}

/// Payments final at a node without its list showing them: each is counted
/// final there when the skip was read, if it was final on every other node
/// by then (the node's ledger agreeing with theirs at the end is the proof);
/// it gives no latency sample.
#[derive(Debug, Default)]
pub(super) struct Vouched {
    pairs: HashSet<(TxId, usize)>,
}

impl Vouched {
    /// Node `i` skipped, read at `seen`: returns the txids now final
    /// everywhere.
    pub(super) fn skip(
        &mut self,
        observed: &mut HashMap<TxId, Vec<Option<u64>>>,
        i: usize,
        seen: u64,
    ) -> Vec<TxId> {
        let mut now_everywhere = Vec::new();
        for (txid, at) in observed.iter_mut() {
            let elsewhere =
                (at.iter().enumerate()).all(|(j, a)| j == i || a.is_some_and(|t| t <= seen));
            if at.get(i) == Some(&None) && elsewhere {
                at[i] = Some(seen);
                self.pairs.insert((*txid, i));
                now_everywhere.push(*txid);
            }
        }
        now_everywhere
    }

    /// Whether node `i`'s time for `txid` is a skip's, not its own.
    pub(super) fn contains(&self, txid: &TxId, i: usize) -> bool {
        self.pairs.contains(&(*txid, i))
    }

    pub(super) fn len(&self) -> usize {
        self.pairs.len()
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
        assert_eq!(c.advance(&page(180, 5, 9)), Advance::default());
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
        assert_eq!((synced.synced, synced.unread, c.at), (true, 0, 0));
        assert!(synced.skipped());
        let again = c.advance(&FinalizedPage {
            snapshots: 1,
            ..page(260, 80, 7)
        });
        assert!(!again.skipped(), "the new list read from its start");
        assert_eq!(c.at, 340);
    }

    #[test]
    fn only_payments_final_everywhere_else_before_the_skip_are_vouched_for() {
        let t = |b: u8| TxId([b; 32]);
        let mut observed = HashMap::from([
            (t(1), vec![Some(10), Some(12), None]),
            (t(2), vec![Some(10), None, None]),
            (t(3), vec![Some(10), Some(90), None]),
            (t(4), vec![Some(10), Some(11), Some(15)]),
        ]);
        let mut v = Vouched::default();
        assert_eq!(v.skip(&mut observed, 2, 50), [t(1)]);
        assert_eq!(observed[&t(1)][2], Some(50));
        assert_eq!(observed[&t(2)][2], None, "not final on n1");
        assert_eq!(observed[&t(3)][2], None, "final on n1 only after the skip");
        assert_eq!(observed[&t(4)][2], Some(15), "seen there itself");
        assert!(v.contains(&t(1), 2) && !v.contains(&t(4), 2));
        assert_eq!(v.len(), 1);
    }
}
