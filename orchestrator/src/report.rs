//! Run reports: `report.json`, `junit.xml` (one test case per invariant), the
//! scenario as run (`scenario.yaml`, replayable) and a
//! self-contained `report.html` with plots (finality latency and throughput over
//! time, peers per node over time, fault windows shaded).

use std::path::Path;
use std::time::{Duration, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::checks::Verdict;
use crate::observe::Observations;

mod aggregate;
mod html;
mod junit;
mod series;
mod svg;
#[cfg(test)]
mod tests;

/// Everything a run produced; what `report.json` holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunReport {
    pub scenario: String,
    pub description: Option<String>,
    pub seed: u64,
    /// All verdicts passed and no tool error.
    pub passed: bool,
    /// A signal cut the run short (exit 130/143); `error` says so too.
    #[serde(default)]
    pub interrupted: bool,
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
    let junit = junit::render(report).map_err(std::io::Error::other)?;
    std::fs::write(dir.join("junit.xml"), junit)?;
    // The scenario as run (a nemesis drawn into its timeline): replayable.
    if !report.resolved_scenario.trim().is_empty() {
        std::fs::write(dir.join("scenario.yaml"), &report.resolved_scenario)?;
    }
    std::fs::write(dir.join("report.html"), html::render(report))?;
    Ok(())
}

/// Seconds the run lasted (`ended - started`), 0 when unknown or negative.
fn run_secs(obs: &Observations) -> f64 {
    let d = obs.ended - obs.started;
    if d.is_finite() && d > 0.0 {
        d
    } else {
        0.0
    }
}

/// Unix seconds as RFC 3339 in UTC to the second (`2023-11-14T22:13:20Z`),
/// `None` for 0 or nonsense (not finite, before 1970, after the year 9999,
/// which humantime cannot format).
fn iso_utc(unix: f64) -> Option<String> {
    const LAST_SECOND_OF_9999: f64 = 253_402_300_799.0;
    if !unix.is_finite() || unix <= 0.0 || unix > LAST_SECOND_OF_9999 {
        return None;
    }
    let t = UNIX_EPOCH + Duration::from_secs_f64(unix);
    Some(humantime::format_rfc3339_seconds(t).to_string())
}
