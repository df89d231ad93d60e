//! Telling the nodes that dial us that we are here.
//!
//! A node that dials a peer whose address is not on the link yet (its
//! container is still starting) queues its SYN behind ARP resolution, and the
//! kernel asks again only once a second: the connection waits up to a second
//! after the peer came up. Linux updates a neighbour entry it is resolving
//! from any ARP request it sees from that address, so a node that has just
//! started sends one datagram to each peer that dials it: resolving that peer
//! broadcasts our ARP request, and the peer's queued SYN goes out at once.
//! Measured with 4 containers (issue 15): the slowest first connection came
//! about 1 s after its peer started, half of the time, without this.
//!
//! The datagram goes to the peer's P2P port over UDP, where nothing listens;
//! it carries nothing and the answer (an ICMP port unreachable) is ignored.

use std::net::{SocketAddr, UdpSocket};

use super::Config;

/// The neighbours that dial us (by the direction rule, those below us).
pub(super) fn dialers(config: &Config) -> Vec<SocketAddr> {
    let dialed = config.dial_targets();
    config
        .neighbours
        .as_ref()
        .unwrap_or(&config.members)
        .iter()
        .filter(|a| **a != config.advertised_addr && !dialed.contains(a))
        .copied()
        .collect()
}

/// One empty datagram to each of `peers`; failures are only logged (the
/// dialers get through a second later anyway).
pub(super) fn announce(peers: &[SocketAddr]) {
    let Some(first) = peers.first() else {
        return;
    };
    let any: SocketAddr = match first {
        SocketAddr::V4(_) => ([0, 0, 0, 0], 0).into(),
        SocketAddr::V6(_) => ([0u16; 8], 0).into(),
    };
    let socket = match UdpSocket::bind(any) {
        Ok(s) => s,
        Err(e) => {
            tracing::debug!(error = %e, "no socket to announce ourselves");
            return;
        }
    };
    let _ = socket.set_nonblocking(true);
    for peer in peers {
        if let Err(e) = socket.send_to(&[], peer) {
            tracing::debug!(%peer, error = %e, "announcing ourselves failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dialers_are_the_neighbours_below_us() {
        let a = |p: u16| -> SocketAddr { ([10, 0, 0, 1], p).into() };
        let keypair = crate::identity::Keypair::generate();
        let config = Config {
            members: vec![a(1), a(2), a(3)],
            ..Config::new("t".into(), keypair, a(2))
        };
        assert_eq!(dialers(&config), [a(1)]);
        let config = Config {
            neighbours: Some(vec![a(3)]),
            ..config
        };
        assert!(dialers(&config).is_empty());
        // Sending to nobody, or to a port where nothing listens, is fine.
        announce(&[]);
        let free = UdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        announce(&[free]);
    }
}
