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
    /// While it lasts, no validator can gather a quorum (> 2/3 of validators):
    /// nothing may finalize.
    pub no_quorum: bool,
}

/// A window's place in the book.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowId(usize);

/// The windows of a run, in the order they opened.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WindowBook {
    windows: Vec<FaultEvent>,
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
        self.close_where(at, |w| w.kind != FaultKind::Process);
    }

    fn close_where(&mut self, at: f64, which: impl Fn(&FaultEvent) -> bool) {
        for w in self.windows.iter_mut().filter(|w| w.end.is_none()) {
            if which(w) {
                w.end = Some(at);
            }
        }
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
}
