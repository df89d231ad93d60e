//! The fault-window book: when each fault of a run was surely in place. Pure;
//! the runner writes it, the checkers and the report read it.
//!
//! A network fault's window runs from when its apply returned (every node has
//! it) to when its undo began (the first node may lose it at once); a process
//! fault's from when the call began (the process may be down at once). A heal
//! closes every open network window, a new cut the open cut, and a window never
//! closed lasts to the end of the run.

use serde::{Deserialize, Serialize};

/// What a fault did to the testnet, for the checkers and the report's shading.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultKind {
    /// Cuts links (partition).
    Partition,
    /// Slows or thins links (delay, loss, bandwidth, duplicate, latency).
    Link,
    /// Stops, kills, pauses or restarts node processes or containers.
    Process,
    /// Limits a node's CPU or memory (a memory limit may OOM-kill it).
    Resource,
    /// Skews a node's clock.
    Clock,
    /// Switches a Byzantine behaviour on in a node.
    Byzantine,
    /// Fills a node's disk or faults its store (it stops voting, and is
    /// restarted by the undo).
    Disk,
}

/// One fault window of the timeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FaultEvent {
    /// Unix seconds it was applied.
    pub start: f64,
    /// Unix seconds it was healed or undone (`None`: until the end).
    pub end: Option<f64>,
    pub kind: FaultKind,
    /// How the timeline wrote it, e.g. `partition n0,n1 | n2,n3`.
    pub label: String,
    /// Nodes it touches (for process faults: the nodes allowed to go down).
    pub nodes: Vec<String>,
    /// Right after it was applied, no validator could gather a quorum (> 2/3
    /// of validators): nothing may finalize (see [`QuorumGap`] for the spans).
    pub no_quorum: bool,
    /// Nodes that, while it lasts, hear no validator that can gather a quorum
    /// (they cannot finalize anything until it ends).
    #[serde(default)]
    pub cut_off: Vec<String>,
    /// The fault itself (resolved), to judge its effect.
    #[serde(default)]
    pub fault: Option<super::Fault>,
    /// What the apply reported (a process report, what a container went
    /// through).
    #[serde(default)]
    pub applied: Option<String>,
    /// The timeline step it comes from (`timeline[N]`).
    #[serde(default)]
    pub step: Option<usize>,
}

/// A span with no quorum anywhere: the union of the cuts in place and the
/// validators down, stopped or paused left no validator hearing > 2/3.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QuorumGap {
    pub start: f64,
    /// `None`: until the end of the run.
    pub end: Option<f64>,
    /// What was in place when it began.
    pub why: String,
}

/// A window's place in the book.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowId(usize);

/// The windows of a run, in the order they opened.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WindowBook {
    windows: Vec<FaultEvent>,
    gaps: Vec<QuorumGap>,
}

impl WindowBook {
    /// Opens a window. A cut closes the cut in place (it replaces it).
    pub fn open(&mut self, event: FaultEvent) -> WindowId {
        if event.kind == FaultKind::Partition {
            let at = event.start;
            self.close_where(at, |w| w.kind == FaultKind::Partition);
        }
        self.windows.push(event);
        WindowId(self.windows.len() - 1)
    }

    /// Closes window `id` at `at` (when its undo began), unless closed already.
    pub fn close(&mut self, id: WindowId, at: f64) {
        if let Some(w) = self.windows.get_mut(id.0) {
            w.end.get_or_insert(at);
        }
    }

    /// A heal: every open network window closes at `at`.
    pub fn heal(&mut self, at: f64) {
        self.close_where(at, |w| {
            matches!(w.kind, FaultKind::Partition | FaultKind::Link)
        });
    }

    fn close_where(&mut self, at: f64, which: impl Fn(&FaultEvent) -> bool) {
        for w in self.windows.iter_mut().filter(|w| w.end.is_none()) {
            if which(w) {
                w.end = Some(at);
            }
        }
    }

    /// Records whether some validator can gather a quorum from `at` on:
    /// opens a gap when it cannot (with `why`), closes the open one when it can.
    pub fn quorum(&mut self, at: f64, possible: bool, why: impl FnOnce() -> String) {
        let open = self.gaps.last_mut().filter(|g| g.end.is_none());
        match (open, possible) {
            (Some(gap), true) => gap.end = Some(at),
            (None, false) => self.gaps.push(QuorumGap {
                start: at,
                end: None,
                why: why(),
            }),
            _ => {}
        }
    }

    pub fn gaps(&self) -> &[QuorumGap] {
        &self.gaps
    }

    pub fn any_open(&self) -> bool {
        self.windows.iter().any(|w| w.end.is_none())
    }

    pub fn windows(&self) -> &[FaultEvent] {
        &self.windows
    }

    pub fn into_events(self) -> Vec<FaultEvent> {
        self.windows
    }

    /// The windows and the quorum gaps.
    pub fn into_parts(self) -> (Vec<FaultEvent>, Vec<QuorumGap>) {
        (self.windows, self.gaps)
    }
}

/// The windows in place at `t` (an open window lasts to `run_end`).
pub fn active_at(
    windows: &[FaultEvent],
    t: f64,
    run_end: f64,
) -> impl Iterator<Item = &FaultEvent> {
    windows
        .iter()
        .filter(move |w| w.start <= t && t < w.end.unwrap_or(run_end))
}

/// The instants the testnet went back to no fault at all: every window's end
/// at which no other window is in place.
pub fn heals(windows: &[FaultEvent], run_end: f64) -> Vec<f64> {
    windows
        .iter()
        .filter_map(|w| w.end)
        .filter(|&e| active_at(windows, e, run_end).next().is_none())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(kind: FaultKind, start: f64, label: &str) -> FaultEvent {
        FaultEvent {
            start,
            end: None,
            kind,
            label: label.into(),
            nodes: vec![],
            no_quorum: false,
            cut_off: vec![],
            fault: None,
            applied: None,
            step: None,
        }
    }

    #[test]
    fn windows_open_close_and_a_second_close_keeps_the_first() {
        let mut book = WindowBook::default();
        let a = book.open(event(FaultKind::Link, 10.0, "delay"));
        assert!(book.any_open());
        book.close(a, 15.0);
        book.close(a, 18.0);
        assert_eq!(book.windows()[0].end, Some(15.0));
        assert!(!book.any_open());
    }

    #[test]
    fn a_new_cut_closes_the_open_cut_and_a_heal_closes_network_windows_only() {
        let mut book = WindowBook::default();
        let cut = book.open(event(FaultKind::Partition, 10.0, "a"));
        let kill = book.open(event(FaultKind::Process, 11.0, "kill n1"));
        book.open(event(FaultKind::Partition, 12.0, "b"));
        book.open(event(FaultKind::Link, 13.0, "delay"));
        assert_eq!(book.windows()[cut.0].end, Some(12.0));
        book.heal(20.0);
        let ends: Vec<Option<f64>> = book.windows().iter().map(|w| w.end).collect();
        assert_eq!(ends, vec![Some(12.0), None, Some(20.0), Some(20.0)]);
        book.close(kill, 25.0);
        assert!(!book.any_open());
    }

    #[test]
    fn active_windows_and_heals_over_overlaps() {
        let mut book = WindowBook::default();
        let a = book.open(event(FaultKind::Link, 10.0, "a"));
        let b = book.open(event(FaultKind::Process, 12.0, "b"));
        book.close(a, 15.0);
        book.close(b, 18.0);
        book.open(event(FaultKind::Link, 30.0, "open-ended"));
        let w = book.into_events();
        let labels = |t| {
            active_at(&w, t, 40.0)
                .map(|e| e.label.clone())
                .collect::<Vec<_>>()
        };
        assert!(labels(9.9).is_empty());
        assert_eq!(labels(10.0), ["a"]);
        assert_eq!(labels(14.0), ["a", "b"]);
        assert_eq!(labels(15.0), ["b"], "an end is exclusive");
        assert_eq!(labels(39.0), ["open-ended"]);
        assert!(labels(40.0).is_empty(), "open windows end with the run");
        assert_eq!(
            heals(&w, 40.0),
            vec![18.0],
            "15 is not a heal: b is still in place"
        );
    }

    #[test]
    fn quorum_gaps_open_when_lost_and_close_when_back() {
        let mut book = WindowBook::default();
        book.quorum(1.0, true, || "unused".into());
        assert!(book.gaps().is_empty());
        book.quorum(2.0, false, || "kill n0, kill n1".into());
        assert_eq!(book.gaps().len(), 1, "open from +2");
        book.quorum(3.0, false, || "still".into());
        book.quorum(4.0, true, || "unused".into());
        book.quorum(5.0, false, || "partition".into());
        let (_, gaps) = book.into_parts();
        assert_eq!(gaps.len(), 2);
        assert_eq!((gaps[0].start, gaps[0].end), (2.0, Some(4.0)));
        assert_eq!(gaps[0].why, "kill n0, kill n1", "the reason when it began");
        assert_eq!((gaps[1].start, gaps[1].end), (5.0, None));
    }
}
