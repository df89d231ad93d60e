//! Every dashboard through Grafana's own typed models and back: the
//! grafana-foundation-sdk (Python), driven by `tests/grafana_roundtrip.py`,
//! which prints whatever the round trip drops or changes.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::model::root;

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/grafana_roundtrip.py")
}

/// Runs the round trip on dashboard files or directories: whether it kept
/// everything, and what the script printed. Panics, with the fix, when it
/// cannot run (python3 or the pinned SDK missing).
fn round_trip(paths: &[&Path]) -> (bool, String) {
    let out = Command::new("python3")
        .arg(script())
        .args(paths)
        .output()
        .unwrap_or_else(|e| panic!("python3 {}: {e} (install python3)", script().display()));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    match out.status.code() {
        Some(0) => (true, text),
        Some(1) => (false, text),
        _ => panic!(
            "the Grafana round trip did not run ({}):\n{text}",
            out.status
        ),
    }
}

#[test]
fn every_dashboard_survives_grafanas_typed_models() {
    let dir = root().join("grafana/dashboards");
    let (kept, text) = round_trip(&[&dir]);
    println!("{text}");
    assert!(
        kept,
        "the round trip through Grafana's models lost:\n{text}"
    );
    let count = super::model::dashboards().len();
    assert!(
        text.contains(&format!(
            "{count} dashboards through grafana-foundation-sdk"
        )),
        "not every dashboard went through:\n{text}"
    );
}

#[test]
fn the_round_trip_reports_what_grafanas_models_drop() {
    let ours = root().join("grafana/dashboards/network.json");
    let mut d: serde_json::Value = serde_json::from_str(&super::model::read(&ours)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("as_is.json"), d.to_string()).unwrap();
    // A misspelt panel key, target key and annotation option, an option the
    // panel's model does not have, and a panel type Grafana does not know.
    let panel = &mut d["panels"][1];
    panel["fieldConfg"] = panel["fieldConfig"].take();
    panel.as_object_mut().unwrap().remove("fieldConfig");
    panel["targets"][0]["legendFormt"] = "{{node}}".into();
    d["panels"][2]["options"]["colourMode"] = "value".into();
    d["panels"][3]["type"] = "timeseris".into();
    d["annotations"]["list"][1]["titelFormat"] = "fault".into();
    std::fs::write(dir.path().join("misspelt.json"), d.to_string()).unwrap();
    let mut old = d.clone();
    old["schemaVersion"] = 39.into();
    std::fs::write(dir.path().join("old.json"), old.to_string()).unwrap();

    let (kept, text) = round_trip(&[dir.path()]);
    assert!(
        !kept,
        "a dashboard with misspelt keys went through:\n{text}"
    );
    for expected in [
        "as_is.json: 0 differences",
        "misspelt.json: .panels[1].fieldConfg: dropped",
        "misspelt.json: .panels[1].targets[0].legendFormt: dropped",
        "misspelt.json: .panels[2].options.colourMode: dropped",
        "misspelt.json: .panels[3].type: 'timeseris' has no panel model",
        "misspelt.json: .annotations.list[1].titelFormat: dropped",
        "misspelt.json: 5 differences",
        "old.json: .schemaVersion: 39, the SDK's models are of schema 41",
        "3 dashboards through grafana-foundation-sdk",
    ] {
        assert!(text.contains(expected), "{expected:?} not in:\n{text}");
    }
}
