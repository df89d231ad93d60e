//! The fault timeline of a scenario, executed at its offsets: each event is
//! applied or undone through [`chaos`], and the [`WindowBook`] records when
//! each fault was surely in place.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::agent::AgentApi;
use crate::chaos::{self, ChaosError};
use crate::engine::Engine;
use crate::fault::quorum::quorum_possible;
use crate::fault::{FaultEvent, FaultKind, Undo, WindowBook, WindowId};
use crate::observe::unix_now;
use crate::scenario::{Action, Event};
use crate::testnet::{NodeProbe, Testnet};

/// Runs `events` (sorted by offset) from `start`. `lease` goes with every
/// network fault, so they expire by themselves if this process dies.
pub async fn execute<E: Engine, P: NodeProbe>(
    tn: &Testnet<'_, E, P>,
    agent: &dyn AgentApi,
    events: &[Event],
    book: &Mutex<WindowBook>,
    start: Instant,
    lease: Option<Duration>,
    progress: &(impl Fn(&str) + Sync),
) -> Result<(), ChaosError> {
    let all = tn.plan()?.node_names();
    // Per window of the scenario: its place in the book and how to undo it.
    let mut windows: Vec<Option<(WindowId, Undo)>> = Vec::new();
    for event in events {
        tokio::time::sleep_until((start + event.at).into()).await;
        if windows.len() <= event.window {
            windows.resize(event.window + 1, None);
        }
        let (fault, undo) = match &event.action {
            Action::Apply(f) => (f, false),
            Action::Undo(f) => (f, true),
        };
        progress(&format!(
            "+{:.1}s {}{}",
            start.elapsed().as_secs_f64(),
            if undo { "undo " } else { "" },
            fault.label()
        ));
        // A window is what is sure to be in place: from when the apply
        // returned (every node has it) to when the undo began (the first node
        // may lose it at once). A process may be down as soon as the call begins.
        let before = unix_now();
        if undo {
            if let Some((id, how)) = windows[event.window].take() {
                chaos::undo(tn, agent, &how, lease).await?;
                lock(book).close(id, before);
            }
            continue;
        }
        let applied = chaos::apply(tn, agent, fault, lease).await?;
        let now = unix_now();
        if fault.is_heal() {
            // A heal of some nodes leaves the other faults: their windows stay.
            if matches!(fault, crate::fault::Fault::Heal) {
                lock(book).heal(before);
            }
            continue;
        }
        let kind = fault.kind();
        let no_quorum = kind == FaultKind::Partition && !quorum_now(tn)?;
        // A restart is over when it returns; the checkers allow time to come back.
        let instant = matches!(fault.process(), Some((_, a, _)) if a.undo().is_none());
        let id = lock(book).open(FaultEvent {
            start: if kind == FaultKind::Process {
                before
            } else {
                now
            },
            end: instant.then_some(now),
            kind,
            label: fault.label(),
            nodes: fault.nodes(&all),
            no_quorum,
        });
        windows[event.window] = Some((id, applied.undo));
    }
    Ok(())
}

/// Can some validator gather a quorum under the faults desired now?
fn quorum_now<E: Engine, P: NodeProbe>(tn: &Testnet<'_, E, P>) -> Result<bool, ChaosError> {
    let plan = tn.plan()?;
    Ok(quorum_possible(&plan.roster(), &chaos::desired_states(tn)?))
}

fn lock(book: &Mutex<WindowBook>) -> std::sync::MutexGuard<'_, WindowBook> {
    book.lock().unwrap_or_else(|e| e.into_inner())
}
