//! The delay worker: holds each packet the kernel queues (NFQUEUE, fail-open) on
//! arrival until its due time, then accepts it: netem's delay for kernels without
//! netem. Packets are keyed by their source (see `FaultState::delay_from`).
//!
//! [`Scheduler`] is the pure part: a packet's due time is its arrival plus the
//! link's delay plus uniform jitter, but never earlier than the previous packet of
//! the same flow, so jitter spreads latency without reordering a TCP stream.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap};
use std::net::Ipv4Addr;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use rand::Rng;
use tracing::{info, warn};

use crate::faults::{Delay, DELAY_QUEUE};

/// The 5-tuple of an IPv4 packet (ports zero for protocols without them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Flow {
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub proto: u8,
    pub sport: u16,
    pub dport: u16,
}

impl Flow {
    /// Parses the IPv4 header (and TCP/UDP ports) at the start of `packet`.
    pub fn parse(packet: &[u8]) -> Option<Flow> {
        if packet.len() < 20 || packet[0] >> 4 != 4 {
            return None;
        }
        let ihl = (packet[0] & 0x0f) as usize * 4;
        let proto = packet[9];
        let src = Ipv4Addr::new(packet[12], packet[13], packet[14], packet[15]);
        let dst = Ipv4Addr::new(packet[16], packet[17], packet[18], packet[19]);
        let (sport, dport) = if (proto == 6 || proto == 17) && packet.len() >= ihl + 4 {
            (
                u16::from_be_bytes([packet[ihl], packet[ihl + 1]]),
                u16::from_be_bytes([packet[ihl + 2], packet[ihl + 3]]),
            )
        } else {
            (0, 0)
        };
        Some(Flow {
            src,
            dst,
            proto,
            sport,
            dport,
        })
    }
}

#[derive(Debug, Default)]
pub struct Scheduler {
    last_due: HashMap<Flow, Instant>,
}

impl Scheduler {
    /// When a packet of `flow` arriving at `now` may leave.
    pub fn due(&mut self, flow: Flow, now: Instant, delay: Delay, rng: &mut impl Rng) -> Instant {
        // Reordering: this packet goes at once, ahead of what its flow has held.
        if delay.reorder_per_mille > 0 && rng.gen_range(0..1000) < delay.reorder_per_mille {
            return now;
        }
        let jitter = delay.jitter_ms.min(delay.ms) as i64;
        let ms = delay.ms as i64
            + if jitter > 0 {
                rng.gen_range(-jitter..=jitter)
            } else {
                0
            };
        let mut due = now + Duration::from_micros((ms.max(0) * 1000) as u64);
        if let Some(last) = self.last_due.get(&flow) {
            due = due.max(*last);
        }
        self.last_due.insert(flow, due);
        // Forget flows whose last packet left long ago.
        if self.last_due.len() > 4096 {
            self.last_due
                .retain(|_, d| *d + Duration::from_secs(10) > now);
        }
        due
    }
}

struct Held {
    due: Instant,
    seq: u64,
    src: Ipv4Addr,
    msg: nfq::Message,
}

impl PartialEq for Held {
    fn eq(&self, other: &Self) -> bool {
        (self.due, self.seq) == (other.due, other.seq)
    }
}
impl Eq for Held {}
impl PartialOrd for Held {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Held {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.due, self.seq).cmp(&(other.due, other.seq))
    }
}

/// Delay per source address. Shared between the control API (writes) and the
/// worker (reads).
pub type Delays = Arc<RwLock<BTreeMap<Ipv4Addr, Delay>>>;

/// The running worker thread.
pub struct Worker {
    stop: Arc<std::sync::atomic::AtomicBool>,
    thread: std::thread::JoinHandle<()>,
}

impl Worker {
    pub fn is_finished(&self) -> bool {
        self.thread.is_finished()
    }

    /// Stops the worker and closes its queue; held packets are released first.
    pub fn stop(self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let _ = self.thread.join();
    }
}

/// Starts the worker thread bound to [`DELAY_QUEUE`].
pub fn spawn(delays: Delays) -> std::io::Result<Worker> {
    let mut queue = nfq::Queue::open()?;
    queue.bind(DELAY_QUEUE)?;
    queue.set_fail_open(DELAY_QUEUE, true)?;
    // Headers are enough to find the flow; the payload is never sent back.
    queue.set_copy_range(DELAY_QUEUE, 64)?;
    queue.set_queue_max_len(DELAY_QUEUE, 65_536)?;
    queue.set_nonblocking(true);
    info!(queue = DELAY_QUEUE, "delay worker bound");
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = stop.clone();
    let thread = std::thread::Builder::new()
        .name("delay".into())
        .spawn(move || run(queue, delays, &flag))?;
    Ok(Worker { stop, thread })
}

fn run(mut queue: nfq::Queue, delays: Delays, stop: &std::sync::atomic::AtomicBool) {
    let mut scheduler = Scheduler::default();
    let mut rng = rand::thread_rng();
    let mut held: BinaryHeap<Reverse<Held>> = BinaryHeap::new();
    let mut seq = 0u64;
    loop {
        if stop.load(std::sync::atomic::Ordering::Relaxed) {
            // Let everything go: what we hold, and what the kernel queued for us.
            for Reverse(mut h) in held.drain() {
                h.msg.set_verdict(nfq::Verdict::Accept);
                let _ = queue.verdict(h.msg);
            }
            while let Ok(mut msg) = queue.recv() {
                msg.set_verdict(nfq::Verdict::Accept);
                let _ = queue.verdict(msg);
            }
            let _ = queue.unbind(DELAY_QUEUE);
            return;
        }
        loop {
            match queue.recv() {
                Ok(mut msg) => {
                    let now = Instant::now();
                    let flow = Flow::parse(msg.get_payload());
                    let delay = flow.and_then(|f| {
                        delays
                            .read()
                            .unwrap_or_else(|e| e.into_inner())
                            .get(&f.src)
                            .copied()
                    });
                    match (flow, delay) {
                        (Some(f), Some(d)) => {
                            seq += 1;
                            let due = scheduler.due(f, now, d, &mut rng);
                            held.push(Reverse(Held {
                                due,
                                seq,
                                src: f.src,
                                msg,
                            }));
                        }
                        _ => {
                            msg.set_verdict(nfq::Verdict::Accept);
                            let _ = queue.verdict(msg);
                        }
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) => {
                    warn!(error = %e, "delay queue receive failed");
                    break;
                }
            }
        }
        let now = Instant::now();
        // A healed link releases what it holds at once. One short read of the
        // table per wake-up, no copy: this runs up to a thousand times a second.
        let (healed, no_delays) = {
            let table = delays.read().unwrap_or_else(|e| e.into_inner());
            (
                held.iter().any(|h| !table.contains_key(&h.0.src)),
                table.is_empty(),
            )
        };
        if healed {
            let table = delays.read().unwrap_or_else(|e| e.into_inner());
            for Reverse(mut h) in std::mem::take(&mut held).into_vec() {
                if !table.contains_key(&h.src) {
                    h.due = now;
                }
                held.push(Reverse(h));
            }
        }
        while held.peek().is_some_and(|h| h.0.due <= now) {
            let Some(Reverse(mut h)) = held.pop() else {
                break;
            };
            h.msg.set_verdict(nfq::Verdict::Accept);
            if let Err(e) = queue.verdict(h.msg) {
                warn!(error = %e, "delay verdict failed");
            }
        }
        // The queue's fd is not exposed for poll(): wake at the next due time,
        // at most 1 ms later while delays are set, 50 ms when none is.
        let idle = if no_delays && held.is_empty() {
            Duration::from_millis(50)
        } else {
            Duration::from_millis(1)
        };
        let wait = held
            .peek()
            .map(|h| h.0.due.saturating_duration_since(now))
            .unwrap_or(idle)
            .min(idle);
        std::thread::sleep(wait);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    fn flow(sport: u16) -> Flow {
        Flow {
            src: Ipv4Addr::new(10, 77, 0, 10),
            dst: Ipv4Addr::new(10, 77, 0, 11),
            proto: 6,
            sport,
            dport: 7000,
        }
    }

    #[test]
    fn jitter_spreads_latency_but_never_reorders_a_flow() {
        let mut s = Scheduler::default();
        let mut rng = StdRng::seed_from_u64(3);
        let start = Instant::now();
        let d = Delay {
            ms: 100,
            jitter_ms: 20,
            reorder_per_mille: 0,
        };
        let mut last = start;
        let mut spread = Vec::new();
        for i in 0..1000u64 {
            let now = start + Duration::from_micros(i * 200);
            let due = s.due(flow(1), now, d, &mut rng);
            assert!(due >= last, "packet {i} would overtake the previous one");
            assert!(due >= now + Duration::from_millis(80));
            last = due;
            spread.push((due - now).as_millis());
        }
        assert!(
            spread.iter().max().unwrap() - spread.iter().min().unwrap() >= 20,
            "jitter shows as spread"
        );
        // Another flow is independent.
        let other = s.due(flow(2), start, Delay::fixed(10), &mut rng);
        assert_eq!(other, start + Duration::from_millis(10));
    }

    #[test]
    fn reordering_lets_a_share_of_packets_overtake_their_flow() {
        let mut s = Scheduler::default();
        let mut rng = StdRng::seed_from_u64(5);
        let start = Instant::now();
        let d = Delay {
            ms: 50,
            jitter_ms: 0,
            reorder_per_mille: 250,
        };
        let dues: Vec<Instant> = (0..2000u64)
            .map(|i| s.due(flow(1), start + Duration::from_micros(i * 100), d, &mut rng))
            .collect();
        let overtaking = dues.windows(2).filter(|w| w[1] < w[0]).count();
        let immediate = dues
            .iter()
            .enumerate()
            .filter(|(i, t)| **t == start + Duration::from_micros(*i as u64 * 100))
            .count();
        // About a quarter go at once; each of them overtakes the held packet before.
        assert!(
            (400..600).contains(&immediate),
            "{immediate} of 2000 sent at once"
        );
        assert!(overtaking >= immediate * 2 / 3, "{overtaking} overtakes");
        // Without reordering nothing overtakes.
        let mut s = Scheduler::default();
        let ordered: Vec<Instant> = (0..2000u64)
            .map(|i| {
                s.due(
                    flow(1),
                    start + Duration::from_micros(i * 100),
                    Delay {
                        reorder_per_mille: 0,
                        ..d
                    },
                    &mut rng,
                )
            })
            .collect();
        assert!(ordered.windows(2).all(|w| w[1] >= w[0]));
    }

    #[test]
    fn flows_are_read_from_ipv4_headers() {
        let mut p = vec![0u8; 40];
        p[0] = 0x45;
        p[9] = 6;
        p[12..16].copy_from_slice(&[10, 77, 0, 10]);
        p[16..20].copy_from_slice(&[10, 77, 0, 12]);
        p[20..22].copy_from_slice(&40000u16.to_be_bytes());
        p[22..24].copy_from_slice(&7000u16.to_be_bytes());
        let f = Flow::parse(&p).unwrap();
        assert_eq!(
            (f.dst, f.sport, f.dport),
            (Ipv4Addr::new(10, 77, 0, 12), 40000, 7000)
        );
        assert!(Flow::parse(&p[..10]).is_none());
        p[0] = 0x60;
        assert!(Flow::parse(&p).is_none(), "not IPv4");
    }
}
