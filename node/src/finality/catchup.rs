//! Catch-up: what a node sends a peer that (re)connects, the periodic
//! inventory comparison, and the exchange that fetches missing certificates.
//! Across hops it works neighbour by neighbour: each node catches up from its
//! own peers, which caught up from theirs.

use super::*;

/// The encoded certificates of one catch-up reply, at most: a frame's worth
/// less room for the message around them (a reply the frame cannot hold would
/// drop the peer, and catch-up of large transactions would never end). What
/// does not fit is asked for again at the next inventory comparison.
/// (The frame's limit is `p2p::frame::MAX_FRAME`, 2 MiB; a test there keeps
/// the two in step.)
pub const CATCHUP_REPLY_BYTES: usize = 2 * 1024 * 1024 - 4096;

impl Engine {
    /// The certificates of `txids` held here, in order, as many as fit in
    /// `budget` encoded bytes (and [`MAX_CERTIFICATES_PER_MESSAGE`]).
    pub(super) fn certificates_within(&self, txids: &[TxId], budget: usize) -> Vec<Certificate> {
        let mut left = budget;
        let mut found = Vec::new();
        for t in txids.iter().take(MAX_CERTIFICATES_PER_MESSAGE) {
            let Some(c) = self.certificate(t) else {
                continue;
            };
            let size = postcard::to_stdvec(c).map_or(usize::MAX, |v| v.len());
            if size > left {
                if size > budget {
                    warn!(tx = %t.short(), size, "a certificate larger than a catch-up reply");
                    continue;
                }
                break;
            }
            left -= size;
            found.push(c.clone());
        }
        found
    }

    /// A catch-up message from peer `from`: compare inventories, offer,
    /// request and apply missing certificates (seed 004's fix).
    pub(super) fn on_catch_up(
        &mut self,
        from: NodeId,
        msg: LedgerMessage,
        now: u64,
        fx: &mut Vec<Effect>,
    ) {
        let passive = self.cfg.bugs.passive_catchup;
        if let LedgerMessage::Inventory(inv) = &msg {
            self.maybe_sync(from, inv, now, fx);
        }
        match msg {
            // With a window, only a peer at least as far on offers: one
            // behind would offer what the other forgot (and would fetch,
            // verify and drop again), not what it lacks.
            LedgerMessage::Inventory(inv)
                if (inv.count != self.finalized_set.len()
                    || inv.buckets != self.finalized_set.inventory().buckets)
                    && (self.cfg.window == 0 || self.finalized_set.len() >= inv.count) =>
            {
                let have = self.finalized_set.differing(&inv, MAX_HAVE);
                if !have.is_empty() {
                    fx.push(Effect::Send(from, LedgerMessage::Have(have)));
                }
            }
            LedgerMessage::Have(txids) if !passive => {
                let missing: Vec<TxId> = txids
                    .into_iter()
                    .filter(|t| {
                        !self.is_final(t)
                            && !self.waiting.contains_key(t)
                            && !self.forgotten_final(t)
                    })
                    .take(MAX_CERTIFICATES_PER_MESSAGE)
                    .collect();
                if !missing.is_empty() {
                    fx.push(Effect::Send(from, LedgerMessage::GetCertificates(missing)));
                }
            }
            LedgerMessage::GetCertificates(txids) => {
                let found = self.certificates_within(&txids, CATCHUP_REPLY_BYTES);
                if !found.is_empty() {
                    fx.push(Effect::Send(from, LedgerMessage::Certificates(found)));
                }
            }
            LedgerMessage::Certificates(certs) => {
                for c in certs.into_iter().take(MAX_CERTIFICATES_PER_MESSAGE) {
                    if self.on_certificate(Arc::new(c), now, fx) {
                        self.metrics.caught_up.inc();
                    }
                }
            }
            _ => {}
        }
    }

    /// A peer (re)connected: re-send what it may have missed: pending
    /// transactions with every vote held on them (not only ours: in a sparse
    /// topology the voter may be hops away, behind a link that was cut).
    pub fn on_peer_connected(&mut self, peer: NodeId) -> Vec<Effect> {
        let mut fx = Vec::new();
        for (txid, e) in self.txs.iter().filter(|(_, e)| e.state == TxState::Pending) {
            if let Some(tx) = &e.tx {
                fx.push(Effect::Send(peer, LedgerMessage::Tx(tx.clone())));
            }
            for v in e.tally.votes(*txid) {
                fx.push(Effect::Send(peer, LedgerMessage::Vote(v)));
            }
        }
        // The votes that rejected what was rejected lately (the rejections
        // suffice: more than 1/3 of them decide it there too).
        for txid in &self.recent_rejected {
            if let Some(e) = self.txs.get(txid) {
                for v in e.tally.votes(*txid).filter(|v| !v.approve) {
                    fx.push(Effect::Send(peer, LedgerMessage::Vote(v)));
                }
            }
        }
        if !self.cfg.bugs.passive_catchup {
            fx.push(Effect::Send(
                peer,
                LedgerMessage::Inventory(self.finalized_set.inventory()),
            ));
        }
        fx
    }

    /// Periodic catch-up: compare inventories with a few peers, and ask again for
    /// parents of certificates still waiting (those waiting too long, with a
    /// window, are dropped first).
    pub fn on_tick(&mut self, peers: &[NodeId], now: u64) -> Vec<Effect> {
        let mut fx = Vec::new();
        if self.cfg.window > 0 {
            self.bound_waiting(now);
            self.sync_tick(now, &mut fx);
            self.claim_tick(&mut fx);
        }
        if self.cfg.bugs.passive_catchup || peers.is_empty() {
            return fx;
        }
        self.tick += 1;
        let inv = self.finalized_set.inventory();
        let fanout = peers.len().min(3);
        for k in 0..fanout {
            let p = peers[(self.tick as usize * fanout + k) % peers.len()];
            fx.push(Effect::Send(p, LedgerMessage::Inventory(inv.clone())));
        }
        let mut parents: Vec<TxId> = self.waiting_on.keys().copied().collect();
        parents.truncate(MAX_CERTIFICATES_PER_MESSAGE);
        if !parents.is_empty() {
            fx.push(Effect::Broadcast(LedgerMessage::GetCertificates(parents)));
        }
        fx
    }
}
