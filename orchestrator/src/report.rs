//! Run reports: `report.json`, `junit.xml` (one test case per invariant), the
//! scenario as run (`scenario.yaml`, replayable) and a
//! self-contained `report.html` with plots (finality latency and throughput over
//! time, peers per node over time, fault windows shaded).

use std::path::Path;

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
    std::fs::write(dir.join("junit.xml"), junit::render(report))?;
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

/// Unix seconds as `YYYY-MM-DDTHH:MM:SS` (UTC), `None` for 0 or nonsense.
fn iso_utc(unix: f64) -> Option<String> {
    if !unix.is_finite() || unix <= 0.0 || unix > 253_402_300_799.0 {
        return None;
    }
    let secs = unix.floor() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    Some(format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    ))
}
