//! One connection's life: handshake, promotion to peer, read loop, goodbye.
//!
//! The connection is already registered in the peer table when `run` starts. Every
//! await on the socket is bounded: the handshake by `handshake_timeout`, reads by
//! `ping_timeout` (peers ping every `ping_interval`), writes by `write_timeout`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_util::codec::{FramedRead, FramedWrite};
use tracing::{debug, info, warn};

use super::frame::{FrameCodec, FrameError, HANDSHAKE_MAX_FRAME, MAX_FRAME};
use super::handshake::{self, HandshakeFailure};
use super::message::{DisconnectReason, Message};
use super::peers::{ConnId, Direction, Endpoint, Promotion};
use super::{lock, CloseSignal, Outgoing, PeerHandle, SessionEnd, Shared};
use crate::metrics::P2pMetrics;

type Reader = FramedRead<OwnedReadHalf, FrameCodec>;
type Writer = FramedWrite<OwnedWriteHalf, FrameCodec>;

/// How a connection ended, for the dialer's backoff.
#[derive(Debug)]
pub(super) enum Outcome {
    HandshakeFailed(HandshakeFailure),
    /// Authenticated, but another connection to the same peer won.
    LostDuplicate,
    /// Was an established peer until this happened.
    Session(SessionEnd),
}

fn count(metrics: &P2pMetrics, direction: &str, kind: &str, bytes: usize) {
    metrics.messages.with_label_values(&[direction, kind]).inc();
    metrics
        .bytes
        .with_label_values(&[direction, kind])
        .inc_by((bytes + super::frame::HEADER_LEN) as u64);
}

/// Removes a connection from the table however its task ends, panics included,
/// so a dead connection can never linger as a peer.
struct Registration<'a> {
    shared: &'a Shared,
    id: ConnId,
}

impl Drop for Registration<'_> {
    fn drop(&mut self) {
        let was_peer = {
            let mut table = self.shared.table();
            let was_peer = table.peers().any(|p| p.id == self.id);
            table.remove(self.id);
            was_peer
        };
        if was_peer {
            self.shared.peers_changed();
        }
    }
}

/// Runs a registered connection to its end and removes it from the table.
pub(super) async fn run(
    shared: &Shared,
    stream: TcpStream,
    id: ConnId,
    direction: Direction,
    handle: PeerHandle,
    rx: mpsc::Receiver<Outgoing>,
    pending: Option<super::admission::Pending>,
) -> Outcome {
    let registration = Registration { shared, id };
    let remote = stream.peer_addr().ok();
    let _ = stream.set_nodelay(true);
    let (read_half, write_half) = stream.into_split();
    let mut reader = FramedRead::new(read_half, FrameCodec::new(HANDSHAKE_MAX_FRAME));
    let mut writer = FramedWrite::new(write_half, FrameCodec::new(MAX_FRAME));

    let authenticated = authenticate(shared, &mut reader, &mut writer, id, &handle).await;
    // The source's handshake slot is free again, whatever the outcome.
    drop(pending);
    let peer = match authenticated {
        Ok(peer) => peer,
        Err(failure) => {
            handshake_failed(shared, &mut writer, remote, direction, &failure).await;
            // Under the simulated race the connection is simply dropped, like the
            // seed's node resetting it.
            return Outcome::HandshakeFailed(failure);
        }
    };
    reader.decoder_mut().set_max_len(MAX_FRAME);
    shared
        .metrics
        .handshakes_completed
        .with_label_values(&[direction.label()])
        .inc();
    let name = shared.name_of(&peer.node_id);
    if !promote(shared, &mut writer, id, peer, &name).await {
        return Outcome::LostDuplicate;
    }
    shared.peers_changed();
    info!(peer = %name, address = %peer.listen_addr, direction = direction.label(), "peer connected");
    if let Some(events) = &shared.events {
        // Bounded wait: a ledger that cannot keep up slows this peer, not the
        // node; a close or shutdown meanwhile ends it at once.
        let arrived = events.send(super::NetworkEvent::PeerConnected(peer.node_id));
        let bound = shared.config.ping_timeout;
        tokio::select! {
            _ = handle.close.token.cancelled() => {}
            sent = tokio::time::timeout(bound, arrived) => if sent.is_err() {
                warn!(peer = %name, ?bound, "the ledger did not take this peer's arrival in time: \
                       its catch-up waits for the next inventory round");
            }
        }
    }

    let writer_task = shared.tracker.spawn(write_loop(
        writer,
        rx,
        handle.queued_bytes.clone(),
        handle.close.clone(),
        shared.metrics.clone(),
        shared.config.write_timeout,
    ));
    let end = session(shared, &mut reader, &handle, peer.node_id).await;

    if let Some(reason) = end.goodbye() {
        let bye = Message::Disconnect { reason };
        // Past the byte limit on purpose: the goodbye goes even to a full queue's tail.
        let _ = handle.enqueue(bye.kind(), bye.encode(), None);
    }
    drop(registration);
    log_disconnect(shared, &name, &end);
    // The table's copy of the sender is gone with the entry; dropping ours lets the
    // writer drain what is queued (the goodbye included) and close the socket.
    let abort = writer_task.abort_handle();
    drop(handle);
    if tokio::time::timeout(shared.config.write_timeout, writer_task)
        .await
        .is_err()
    {
        abort.abort();
    }
    Outcome::Session(end)
}

/// The handshake under its timeout, given up when the connection is closed, with
/// a nonce of ours reserved while it runs (a peer echoing it back is ourselves).
async fn authenticate(
    shared: &Shared,
    reader: &mut Reader,
    writer: &mut Writer,
    id: ConnId,
    handle: &PeerHandle,
) -> Result<Endpoint, HandshakeFailure> {
    let nonce = loop {
        let n = rand::random::<u64>();
        if lock(&shared.nonces).insert(n) {
            break n;
        }
    };
    let result = tokio::select! {
        _ = handle.close.token.cancelled() => Err(HandshakeFailure::ConnectionClosed),
        r = tokio::time::timeout(
            shared.config.handshake_timeout,
            handshake(shared, reader, writer, id, nonce),
        ) => r.unwrap_or(Err(HandshakeFailure::Timeout(shared.config.handshake_timeout))),
    };
    lock(&shared.nonces).remove(&nonce);
    result
}

/// Counts and logs a failed handshake; tells a misbehaving peer why.
async fn handshake_failed(
    shared: &Shared,
    writer: &mut Writer,
    remote: Option<std::net::SocketAddr>,
    direction: Direction,
    failure: &HandshakeFailure,
) {
    shared
        .metrics
        .handshake_failures
        .with_label_values(&[failure.label()])
        .inc();
    let dir = direction.label();
    if failure.is_misbehaviour() {
        warn!(
            ?remote,
            direction = dir,
            reason = failure.label(),
            "handshake failed: {failure}"
        );
        // Tell an honest-but-misconfigured peer why; bounded, best effort.
        let bye = Message::Disconnect {
            reason: DisconnectReason::ProtocolViolation,
        };
        let _ = tokio::time::timeout(shared.config.write_timeout, writer.send(bye.encode())).await;
    } else {
        debug!(
            ?remote,
            direction = dir,
            reason = failure.label(),
            "handshake failed: {failure}"
        );
    }
}

/// Makes the authenticated connection a peer, resolving a duplicate connection to
/// the same node. Returns false when this connection lost to another one (it has
/// then said goodbye).
async fn promote(
    shared: &Shared,
    writer: &mut Writer,
    id: ConnId,
    peer: Endpoint,
    name: &str,
) -> bool {
    let promotion = shared.table().promote(id, peer);
    match promotion {
        Promotion::Established => true,
        Promotion::Replaced { loser } => {
            shared.metrics.duplicates_resolved.inc();
            info!(peer = %name, kept = id.0, closed = loser.0, "duplicate connection resolved: closing the older one");
            if let Some(old) = shared.table().handle(loser) {
                old.close.close(SessionEnd::Duplicate);
            }
            true
        }
        Promotion::Redialed { loser } => {
            shared.metrics.stale_replaced.inc();
            info!(peer = %name, kept = id.0, closed = loser.0, "peer dialed again: closing its stale connection");
            if let Some(old) = shared.table().handle(loser) {
                old.close.close(SessionEnd::Redialed);
            }
            true
        }
        Promotion::Rejected { winner } => {
            shared.metrics.duplicates_resolved.inc();
            info!(peer = %name, kept = winner.0, closed = id.0, "duplicate connection resolved: closing this one");
            let bye = Message::Disconnect {
                reason: DisconnectReason::Duplicate,
            };
            let _ = tokio::time::timeout(shared.config.write_timeout, async {
                writer.send(bye.encode()).await?;
                writer.close().await
            })
            .await;
            false
        }
    }
}

/// Counts a session's end by reason; an orderly end is info, the others warn.
fn log_disconnect(shared: &Shared, name: &str, end: &SessionEnd) {
    shared
        .metrics
        .disconnects
        .with_label_values(&[end.label()])
        .inc();
    match end {
        SessionEnd::Shutdown
        | SessionEnd::Duplicate
        | SessionEnd::Redialed
        | SessionEnd::PeerDisconnected(_)
        | SessionEnd::PeerClosed => {
            info!(peer = %name, reason = end.label(), "peer disconnected")
        }
        _ => warn!(peer = %name, reason = end.label(), "peer disconnected"),
    }
}

/// Sends VERSION, checks theirs, sends VERACK, checks theirs.
async fn handshake(
    shared: &Shared,
    reader: &mut Reader,
    writer: &mut Writer,
    id: ConnId,
    nonce: u64,
) -> Result<Endpoint, HandshakeFailure> {
    let network_id = &shared.config.network_id;
    send(
        shared,
        writer,
        Message::Version(shared.hello.version(nonce)),
    )
    .await?;
    let theirs = match recv(shared, reader).await? {
        Message::Version(v) => v,
        Message::Disconnect { reason } => return Err(HandshakeFailure::Refused(reason)),
        other => {
            return Err(HandshakeFailure::UnexpectedMessage {
                expected: "version",
                got: other.kind(),
            })
        }
    };
    handshake::check_version(&shared.hello, &theirs, |n| {
        lock(&shared.nonces).contains(&n)
    })?;
    let config = &shared.config;
    handshake::check_admission(&config.roster, config.open_admission, &theirs)?;
    let peer = Endpoint {
        node_id: theirs.node_id,
        listen_addr: theirs.listen_addr,
    };
    {
        let mut table = shared.table();
        if shared.config.simulate_handshake_race && table.has_other_connection(id, &peer) {
            return Err(HandshakeFailure::DuplicateConnection);
        }
        table.note_claimed(id, peer);
    }
    let verack = handshake::make_verack(&shared.config.keypair, network_id, theirs.nonce, nonce);
    send(shared, writer, Message::Verack(verack)).await?;
    match recv(shared, reader).await? {
        Message::Verack(v) => handshake::check_verack(network_id, &theirs, nonce, &v)?,
        Message::Disconnect { reason } => return Err(HandshakeFailure::Refused(reason)),
        other => {
            return Err(HandshakeFailure::UnexpectedMessage {
                expected: "verack",
                got: other.kind(),
            })
        }
    }
    Ok(peer)
}

async fn send(
    shared: &Shared,
    writer: &mut Writer,
    message: Message,
) -> Result<(), HandshakeFailure> {
    let payload = message.encode();
    let len = payload.len();
    writer.send(payload).await.map_err(|e| match e {
        FrameError::Io(e) => HandshakeFailure::Io(e.to_string()),
        other => HandshakeFailure::Io(other.to_string()),
    })?;
    count(&shared.metrics, "sent", message.kind(), len);
    Ok(())
}

async fn recv(shared: &Shared, reader: &mut Reader) -> Result<Message, HandshakeFailure> {
    let frame = match reader.next().await {
        None => return Err(HandshakeFailure::ConnectionClosed),
        Some(Err(e)) => {
            return Err(match e {
                FrameError::BadMagic { .. } => HandshakeFailure::BadMagic,
                FrameError::TooLarge { len, max } => HandshakeFailure::FrameTooLarge { len, max },
                FrameError::Truncated { .. } => HandshakeFailure::TruncatedFrame,
                FrameError::Io(e) => HandshakeFailure::Io(e.to_string()),
            })
        }
        Some(Ok(frame)) => frame,
    };
    let message =
        Message::decode(&frame).map_err(|e| HandshakeFailure::MalformedMessage(e.to_string()))?;
    count(&shared.metrics, "received", message.kind(), frame.len());
    Ok(message)
}

/// The established peer's read loop: answers pings, measures RTT, watches silence.
async fn session(
    shared: &Shared,
    reader: &mut Reader,
    handle: &PeerHandle,
    peer: crate::identity::NodeId,
) -> SessionEnd {
    let config = &shared.config;
    let max_bytes = config.peer_queue_bytes;
    let mut ping = tokio::time::interval(config.ping_interval);
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut outstanding: Option<(u64, Instant)> = None;
    let mut silence = Box::pin(tokio::time::sleep(config.ping_timeout));
    let reply = |message: Message| {
        handle
            .enqueue(message.kind(), message.encode(), Some(max_bytes))
            .map_err(|_| SessionEnd::SendQueueFull)
    };
    loop {
        tokio::select! {
            biased;
            _ = handle.close.token.cancelled() => return handle.close.reason(),
            _ = &mut silence => return SessionEnd::PingTimeout,
            _ = ping.tick() => {
                // A ping still unanswered keeps its start time: RTT is never
                // under-reported because a newer ping replaced it.
                if outstanding.is_none() {
                    let nonce = rand::random();
                    outstanding = Some((nonce, Instant::now()));
                    if let Err(end) = reply(Message::Ping { nonce }) {
                        return end;
                    }
                }
            }
            frame = reader.next() => {
                let frame = match frame {
                    None => return SessionEnd::PeerClosed,
                    Some(Err(FrameError::Io(e))) => {
                        debug!(error = %e, "read failed");
                        return SessionEnd::Io;
                    }
                    Some(Err(e)) => {
                        warn!(error = %e, "bad frame from peer");
                        return SessionEnd::BadFrame;
                    }
                    Some(Ok(frame)) => frame,
                };
                silence.as_mut().reset(tokio::time::Instant::now() + config.ping_timeout);
                let message = match Message::decode(&frame) {
                    Ok(m) => m,
                    Err(e) => {
                        warn!(error = %e, "undecodable message from peer");
                        return SessionEnd::MalformedMessage;
                    }
                };
                count(&shared.metrics, "received", message.kind(), frame.len());
                match message {
                    Message::Ping { nonce } => {
                        if let Err(end) = reply(Message::Pong { nonce }) {
                            return end;
                        }
                    }
                    Message::Pong { nonce } => {
                        if let Some((sent_nonce, at)) = outstanding {
                            if sent_nonce == nonce {
                                let rtt = at.elapsed();
                                shared.metrics.ping_rtt.observe(rtt.as_secs_f64());
                                handle.rtt_micros.store(rtt.as_micros() as u64, Ordering::Relaxed);
                                outstanding = None;
                            }
                        }
                    }
                    Message::Disconnect { reason } => return SessionEnd::PeerDisconnected(reason),
                    Message::Ledger(m) => {
                        if let Some(events) = &shared.events {
                            // Back-pressure: while the ledger is busy we stop reading
                            // this peer (TCP slows it down), bounded by shutdown.
                            tokio::select! {
                                _ = handle.close.token.cancelled() => return handle.close.reason(),
                                _ = events.send(super::NetworkEvent::Message(peer, m)) => {}
                            }
                        }
                    }
                    Message::Version(_) | Message::Verack(_) => {
                        warn!(kind = message.kind(), "handshake message after the handshake");
                        return SessionEnd::UnexpectedMessage;
                    }
                }
            }
        }
    }
}

/// Drains the peer's queue into the socket; flushes when the queue runs dry.
async fn write_loop(
    mut writer: Writer,
    mut rx: mpsc::Receiver<Outgoing>,
    // Not the whole `PeerHandle`: holding its sender would keep the queue open forever.
    queued_bytes: Arc<AtomicUsize>,
    close: Arc<CloseSignal>,
    metrics: P2pMetrics,
    write_timeout: std::time::Duration,
) {
    while let Some(out) = rx.recv().await {
        let len = out.payload.len();
        let flush = rx.is_empty();
        let written = tokio::time::timeout(write_timeout, async {
            writer.feed(out.payload).await?;
            if flush {
                writer.flush().await?;
            }
            Ok::<(), FrameError>(())
        })
        .await;
        queued_bytes.fetch_sub(len, Ordering::Relaxed);
        match written {
            Ok(Ok(())) => count(&metrics, "sent", out.kind, len),
            Ok(Err(e)) => {
                debug!(error = %e, "write failed");
                close.close(SessionEnd::Io);
                return;
            }
            Err(_) => {
                close.close(SessionEnd::WriteTimeout);
                return;
            }
        }
    }
    let _ = tokio::time::timeout(write_timeout, writer.close()).await;
}

/// Refuses an inbound connection over the limit: a goodbye, then close.
pub(super) async fn refuse(
    stream: TcpStream,
    reason: DisconnectReason,
    write_timeout: std::time::Duration,
) {
    let mut writer = FramedWrite::new(stream, FrameCodec::new(MAX_FRAME));
    let bye: Bytes = Message::Disconnect { reason }.encode();
    let _ = tokio::time::timeout(write_timeout, async {
        writer.send(bye).await?;
        writer.close().await
    })
    .await;
}
