//! The fault timeline of a scenario, executed at its offsets: each event is
//! applied or undone through [`chaos`], and the [`WindowBook`] records when
//! each fault was surely in place.

use std::collections::BTreeSet;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::agent::AgentApi;
use crate::chaos::{self, ChaosError};
use crate::engine::Engine;
use crate::fault::quorum::{cut_off, quorum_possible, Members};
use crate::fault::{FaultEvent, FaultKind, ProcessAction, Undo, WindowBook, WindowId};
use crate::observe::unix_now;
use crate::scenario::{Action, Event};
use crate::testnet::{NodeProbe, Testnet};

/// Runs `events` (sorted by offset) from `start`. `lease` goes with every
/// network fault, so they expire by themselves if this process dies. After
/// each event the book learns whether a quorum is possible (from the desired
/// cuts and the validators the timeline took down).
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
    let mut down = BTreeSet::new();
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
                if let Undo::Process { node, action, .. } = &how {
                    track_down(&mut down, node, *action);
                }
            }
            record_quorum(tn, book, &down, before)?;
            continue;
        }
        let resolved = super::select::resolve(tn, fault).await?;
        let fault = &resolved;
        let applied = chaos::apply(tn, agent, fault, lease).await?;
        let now = unix_now();
        if let Some((node, action, _)) = fault.process() {
            track_down(&mut down, node, action);
        }
        let (possible, cut_off) = record_quorum(tn, book, &down, before)?;
        if fault.is_heal() {
            // A heal of some nodes leaves the other faults: their windows stay.
            if matches!(fault, crate::fault::Fault::Heal) {
                lock(book).heal(before);
            }
            continue;
        }
        let kind = fault.kind();
        // A restart, or an upgrade for good, is over when it returns (the node
        // answered again); the checkers allow time to come back.
        let for_good = !events
            .iter()
            .any(|e| e.window == event.window && matches!(e.action, Action::Undo(_)));
        let instant = matches!(fault.process(), Some((_, a, _)) if a.undo().is_none())
            || (matches!(fault, crate::fault::Fault::Upgrade { .. }) && for_good);
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
            no_quorum: !possible,
            cut_off,
            fault: Some(fault.clone()),
            applied: Some(applied.detail.clone()),
            step: Some(event.step),
        });
        windows[event.window] = Some((id, applied.undo));
    }
    Ok(())
}

/// Keeps the set of nodes whose process the timeline has taken down.
fn track_down(down: &mut BTreeSet<String>, node: &str, action: ProcessAction) {
    match action {
        ProcessAction::Kill | ProcessAction::Stop | ProcessAction::Pause => {
            down.insert(node.to_owned());
        }
        ProcessAction::Start | ProcessAction::Resume => {
            down.remove(node);
        }
        ProcessAction::Restart => {}
    }
}

/// Whether a quorum is possible from `at` on under the desired cuts with
/// `down` not running, recorded in the book; and the nodes cut off from any.
fn record_quorum<E: Engine, P: NodeProbe>(
    tn: &Testnet<'_, E, P>,
    book: &Mutex<WindowBook>,
    down: &BTreeSet<String>,
    at: f64,
) -> Result<(bool, Vec<String>), ChaosError> {
    let members = Members::of(&tn.plan()?);
    let states = chaos::desired_states(tn)?;
    let possible = quorum_possible(&members, down, &states);
    let cut = cut_off(&members, down, &states);
    lock(book).quorum(at, possible, || {
        let mut why: Vec<String> = down.iter().map(|n| format!("{n} down")).collect();
        if !cut.is_empty() {
            why.push(format!("cut off: {}", cut.join(",")));
        }
        why.join("; ")
    });
    Ok((possible, cut))
}

fn lock(book: &Mutex<WindowBook>) -> std::sync::MutexGuard<'_, WindowBook> {
    book.lock().unwrap_or_else(|e| e.into_inner())
}
