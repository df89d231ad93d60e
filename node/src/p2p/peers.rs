//! The table of connections, and the rule that resolves duplicates.
//!
//! Pure and synchronous; the network holds it behind a mutex for short critical
//! sections. A connection is registered *before* its socket is read or written
//! (seed 000, bug 1): its `ConnId` exists from the first byte on, so there is no
//! "peer has no id yet" state for a fast callback to fall into.
//!
//! Two connections between the same pair of nodes can still happen (both restarted,
//! a peer listed twice, a node running the `handshake-race` bug). Once both are
//! authenticated, each side computes [`keeps_first`] on the same facts and closes the
//! same loser (seed 002).

use std::collections::BTreeMap;
use std::net::SocketAddr;

use crate::identity::NodeId;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ConnId(pub u64);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    Inbound,
    Outbound,
}

impl Direction {
    pub fn label(self) -> &'static str {
        match self {
            Direction::Inbound => "inbound",
            Direction::Outbound => "outbound",
        }
    }
}

/// Who a node is on the network: what the duplicate rule compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Endpoint {
    pub node_id: NodeId,
    pub listen_addr: SocketAddr,
}

impl Endpoint {
    fn order_key(&self) -> (SocketAddr, NodeId) {
        (self.listen_addr, self.node_id)
    }
}

/// One side's view of a connection, as the duplicate rule needs it.
#[derive(Debug, Clone, Copy)]
pub struct ConnView {
    pub direction: Direction,
    pub peer: Endpoint,
}

impl ConnView {
    fn dialer(&self, local: &Endpoint) -> Endpoint {
        match self.direction {
            Direction::Outbound => *local,
            Direction::Inbound => self.peer,
        }
    }
}

/// Whether the older connection `existing` survives when `newer` to the same peer
/// completes its handshake. Both sides reach the same answer:
/// - dialed by different nodes: keep the one dialed by the lower (address, key), the
///   node the direction rule says should dial;
/// - dialed by the same node: that node runs one connection task per peer, so the
///   older connection is dead on its side; keep the newer.
pub fn keeps_first(local: &Endpoint, existing: &ConnView, newer: &ConnView) -> bool {
    let (de, dn) = (existing.dialer(local), newer.dialer(local));
    if de == dn {
        return false;
    }
    de.order_key() < dn.order_key()
}

#[derive(Debug)]
struct Entry<H> {
    direction: Direction,
    remote: SocketAddr,
    /// The address dialed, for outbound connections.
    target: Option<SocketAddr>,
    /// Known once VERSION arrived; authenticated once `established`.
    peer: Option<Endpoint>,
    established: bool,
    handle: H,
}

/// What promoting a handshaken connection to a peer decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Promotion {
    /// It is now the only connection to that peer.
    Established,
    /// It lost to an existing connection and must be closed; it is not a peer.
    Rejected { winner: ConnId },
    /// It replaced `loser`, which the caller must close: a second connection to
    /// the same peer, resolved by [`keeps_first`].
    Replaced { loser: ConnId },
    /// The peer dialed us again and this connection replaced its older inbound
    /// one, `loser`, which the caller must close. Not a duplicate: a node
    /// redials an address only once its connection to it has ended on its side
    /// (a restart, a ping timeout while we were paused or cut off), so the
    /// older one is dead there; we just had not seen it end yet. A node that
    /// dials us under two addresses holds both: its own table counts that
    /// duplicate (two outbound connections, `Replaced`).
    Redialed { loser: ConnId },
}

/// An established peer as seen through the table.
pub struct PeerRef<'a, H> {
    pub id: ConnId,
    pub direction: Direction,
    pub remote: SocketAddr,
    pub peer: Endpoint,
    pub handle: &'a H,
}

#[derive(Debug)]
pub struct PeerTable<H> {
    local: Endpoint,
    next_id: u64,
    entries: BTreeMap<ConnId, Entry<H>>,
}

impl<H> PeerTable<H> {
    pub fn new(local: Endpoint) -> Self {
        PeerTable {
            local,
            next_id: 1,
            entries: BTreeMap::new(),
        }
    }

    /// Registers a connection before any I/O on it; returns its id.
    pub fn register(
        &mut self,
        direction: Direction,
        remote: SocketAddr,
        target: Option<SocketAddr>,
        handle: H,
    ) -> ConnId {
        let id = ConnId(self.next_id);
        self.next_id += 1;
        self.entries.insert(
            id,
            Entry {
                direction,
                remote,
                target,
                peer: None,
                established: false,
                handle,
            },
        );
        id
    }

    /// Records who the peer claims to be (from its VERSION), before authentication.
    pub fn note_claimed(&mut self, id: ConnId, peer: Endpoint) {
        if let Some(e) = self.entries.get_mut(&id) {
            e.peer = Some(peer);
        }
    }

    /// Whether a connection other than `except` exists, in any state, to the node that
    /// `peer` claims to be. Only the simulated handshake race asks this.
    pub fn has_other_connection(&self, except: ConnId, peer: &Endpoint) -> bool {
        self.entries.iter().any(|(id, e)| {
            *id != except
                && (e.target == Some(peer.listen_addr)
                    || e.peer.is_some_and(|p| p.node_id == peer.node_id))
        })
    }

    /// Makes an authenticated connection a peer, applying the duplicate rule.
    pub fn promote(&mut self, id: ConnId, peer: Endpoint) -> Promotion {
        let Some(direction) = self.entries.get(&id).map(|e| e.direction) else {
            // Removed meanwhile (closed by shutdown): nothing to promote.
            return Promotion::Rejected { winner: id };
        };
        let newer = ConnView { direction, peer };
        let existing = self.entries.iter().find_map(|(other, e)| {
            let p = e.peer?;
            (*other != id && e.established && p.node_id == peer.node_id).then_some((
                *other,
                ConnView {
                    direction: e.direction,
                    peer: p,
                },
            ))
        });
        let outcome = match existing {
            None => Promotion::Established,
            Some((other, view)) if keeps_first(&self.local, &view, &newer) => {
                return Promotion::Rejected { winner: other };
            }
            Some((other, view)) => {
                if let Some(e) = self.entries.get_mut(&other) {
                    e.established = false;
                }
                let redial =
                    view.direction == Direction::Inbound && direction == Direction::Inbound;
                if redial {
                    Promotion::Redialed { loser: other }
                } else {
                    Promotion::Replaced { loser: other }
                }
            }
        };
        if let Some(e) = self.entries.get_mut(&id) {
            e.peer = Some(peer);
            e.established = true;
        }
        outcome
    }

    pub fn remove(&mut self, id: ConnId) -> Option<H> {
        self.entries.remove(&id).map(|e| e.handle)
    }

    pub fn handle(&self, id: ConnId) -> Option<&H> {
        self.entries.get(&id).map(|e| &e.handle)
    }

    /// Whether an established peer listens at, or was dialed at, `addr`.
    pub fn is_connected_to(&self, addr: SocketAddr) -> bool {
        self.entries.values().any(|e| {
            e.established
                && (e.target == Some(addr) || e.peer.is_some_and(|p| p.listen_addr == addr))
        })
    }

    pub fn peers(&self) -> impl Iterator<Item = PeerRef<'_, H>> {
        self.entries.iter().filter_map(|(id, e)| {
            let peer = e.peer?;
            e.established.then_some(PeerRef {
                id: *id,
                direction: e.direction,
                remote: e.remote,
                peer,
                handle: &e.handle,
            })
        })
    }

    /// Established peers as (inbound, outbound).
    pub fn counts(&self) -> (usize, usize) {
        self.peers().fold((0, 0), |(i, o), p| match p.direction {
            Direction::Inbound => (i + 1, o),
            Direction::Outbound => (i, o + 1),
        })
    }

    /// Connections in any state (handshaking or established).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::Keypair;
    use proptest::prelude::*;

    fn endpoint(port: u16) -> Endpoint {
        Endpoint {
            node_id: Keypair::from_seed([port as u8; 32]).id(),
            listen_addr: SocketAddr::from(([127, 0, 0, 1], port)),
        }
    }

    fn flip(d: Direction) -> Direction {
        match d {
            Direction::Inbound => Direction::Outbound,
            Direction::Outbound => Direction::Inbound,
        }
    }

    proptest! {
        /// Whatever order the two connections complete in on each side, both sides
        /// close the same connection (seed 002: "a rule both sides compute identically").
        #[test]
        fn both_sides_choose_the_same_survivor(
            pa in 1u16..50, pb in 51u16..100, first_out: bool, second_out: bool, a_sees_first_first: bool, b_sees_first_first: bool,
        ) {
            let (a, b) = (endpoint(pa), endpoint(pb));
            // Connections 0 and 1 between a and b, described from a's side.
            let dirs_a = [
                if first_out { Direction::Outbound } else { Direction::Inbound },
                if second_out { Direction::Outbound } else { Direction::Inbound },
            ];
            let survivor = |local: Endpoint, peer: Endpoint, dirs: [Direction; 2], first_first: bool| {
                let (old, new) = if first_first { (0, 1) } else { (1, 0) };
                let view = |i: usize| ConnView { direction: dirs[i], peer };
                if keeps_first(&local, &view(old), &view(new)) { old } else { new }
            };
            let sa = survivor(a, b, dirs_a, a_sees_first_first);
            let sb = survivor(b, a, dirs_a.map(flip), b_sees_first_first);
            if dirs_a[0] != dirs_a[1] {
                // Different dialers: completion order does not matter.
                prop_assert_eq!(sa, sb);
                // And the survivor is the one dialed by the lower address.
                prop_assert_eq!(dirs_a[sa], Direction::Outbound);
            } else if a_sees_first_first == b_sees_first_first {
                // Same dialer: both keep the newer.
                prop_assert_eq!(sa, sb);
            }
        }
    }

    #[test]
    fn registered_before_io_and_promoted_once() {
        let (me, peer) = (endpoint(1), endpoint(2));
        let mut t: PeerTable<()> = PeerTable::new(me);
        let id = t.register(
            Direction::Outbound,
            peer.listen_addr,
            Some(peer.listen_addr),
            (),
        );
        assert_eq!(t.len(), 1);
        assert_eq!(t.counts(), (0, 0));
        assert!(!t.is_connected_to(peer.listen_addr));
        assert_eq!(t.promote(id, peer), Promotion::Established);
        assert_eq!(t.counts(), (0, 1));
        assert!(t.is_connected_to(peer.listen_addr));
        t.remove(id);
        assert!(t.is_empty());
        assert_eq!(t.promote(id, peer), Promotion::Rejected { winner: id });
    }

    #[test]
    fn duplicate_from_the_wrong_direction_loses_and_restart_replaces() {
        let (me, peer) = (endpoint(1), endpoint(2));
        let mut t: PeerTable<()> = PeerTable::new(me);
        let out = t.register(
            Direction::Outbound,
            peer.listen_addr,
            Some(peer.listen_addr),
            (),
        );
        assert_eq!(t.promote(out, peer), Promotion::Established);
        // The higher node dialed us too: the connection we (lower) dialed wins.
        let inb = t.register(
            Direction::Inbound,
            "127.0.0.1:40000".parse().unwrap(),
            None,
            (),
        );
        assert_eq!(t.promote(inb, peer), Promotion::Rejected { winner: out });
        t.remove(inb);
        assert_eq!(t.counts(), (0, 1));
        // We dialed again while ours was still a peer (a peer listed under two
        // addresses): a duplicate of our own making; the newer replaces it.
        let out2 = t.register(
            Direction::Outbound,
            peer.listen_addr,
            Some(peer.listen_addr),
            (),
        );
        assert_eq!(t.promote(out2, peer), Promotion::Replaced { loser: out });
        assert_eq!(t.counts(), (0, 1));
    }

    #[test]
    fn the_peer_dialing_again_replaces_its_stale_connection_and_is_no_duplicate() {
        let (me, peer) = (endpoint(2), endpoint(1));
        let mut t: PeerTable<()> = PeerTable::new(me);
        let inbound = |t: &mut PeerTable<()>, port: u16| {
            t.register(
                Direction::Inbound,
                SocketAddr::from(([127, 0, 0, 1], port)),
                None,
                (),
            )
        };
        let old = inbound(&mut t, 40000);
        assert_eq!(t.promote(old, peer), Promotion::Established);
        // The lower peer timed us out (we were paused) and dialed again before
        // we read the old connection's end: the newer replaces it.
        let new = inbound(&mut t, 40001);
        assert_eq!(t.promote(new, peer), Promotion::Redialed { loser: old });
        assert_eq!(t.counts(), (1, 0));
        assert_eq!(t.peers().next().map(|p| p.id), Some(new));
        // A connection of ours to it while theirs is a peer is a real duplicate.
        let out = t.register(
            Direction::Outbound,
            peer.listen_addr,
            Some(peer.listen_addr),
            (),
        );
        assert_eq!(t.promote(out, peer), Promotion::Rejected { winner: new });
    }

    #[test]
    fn simulated_race_sees_in_flight_connections() {
        let (me, peer) = (endpoint(1), endpoint(2));
        let mut t: PeerTable<()> = PeerTable::new(me);
        let out = t.register(
            Direction::Outbound,
            peer.listen_addr,
            Some(peer.listen_addr),
            (),
        );
        let inb = t.register(
            Direction::Inbound,
            "127.0.0.1:40000".parse().unwrap(),
            None,
            (),
        );
        assert!(t.has_other_connection(inb, &peer));
        t.remove(out);
        assert!(!t.has_other_connection(inb, &peer));
        t.note_claimed(inb, peer);
        let third = t.register(
            Direction::Inbound,
            "127.0.0.1:40001".parse().unwrap(),
            None,
            (),
        );
        assert!(t.has_other_connection(third, &peer));
    }
}
