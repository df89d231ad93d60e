//! The dashboards' JSON model, checked structurally: layout, ids, datasources,
//! variables, annotations and every query (see `promql`).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::promql::{check_query, parse_variable_query, variables_in};

pub const DATASOURCE_UID: &str = "testnet-prometheus";
/// The dashboard schema version of Grafana's typed models that the round trip
/// (`roundtrip`) loads the dashboards through.
pub const SCHEMA_VERSION: i64 = 41;
const GRID_WIDTH: i64 = 24;
const TESTNET_VARIABLE_QUERY: &str = r#"label_values(up{job="node"}, testnet)"#;

pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../dashboards")
}

pub fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

pub fn yaml(relative: &str) -> serde_norway::Value {
    let path = root().join(relative);
    serde_norway::from_str(&read(&path)).unwrap_or_else(|e| panic!("{relative}: {e}"))
}

/// Every dashboard file, sorted, parsed.
pub fn dashboards() -> Vec<(String, Value)> {
    let dir = root().join("grafana/dashboards");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    files
        .iter()
        .map(|path| {
            let file = path.file_name().unwrap().to_string_lossy().into_owned();
            let value = serde_json::from_str(&read(path))
                .unwrap_or_else(|e| panic!("{file} is not JSON: {e}"));
            (file, value)
        })
        .collect()
}

#[derive(Debug, Clone, Copy)]
pub struct Rect {
    pub x: i64,
    pub y: i64,
    pub w: i64,
    pub h: i64,
}

impl Rect {
    pub fn overlaps(&self, o: &Rect) -> bool {
        self.x < o.x + o.w && o.x < self.x + self.w && self.y < o.y + o.h && o.y < self.y + self.h
    }
}

pub fn grid_pos(p: &Value) -> Result<Rect, String> {
    let g = &p["gridPos"];
    if !g.is_object() {
        return Err("no gridPos".into());
    }
    let field = |k: &str| {
        g[k].as_i64()
            .ok_or_else(|| format!("gridPos.{k} is not an integer"))
    };
    let r = Rect {
        x: field("x")?,
        y: field("y")?,
        w: field("w")?,
        h: field("h")?,
    };
    if r.w <= 0 || r.h <= 0 || r.x < 0 || r.y < 0 || r.x + r.w > GRID_WIDTH {
        return Err(format!(
            "gridPos {r:?} outside the {GRID_WIDTH}-wide grid or empty"
        ));
    }
    Ok(r)
}

pub fn check_datasource(what: &str, ds: &Value, errors: &mut Vec<String>) {
    if ds["uid"].as_str() != Some(DATASOURCE_UID) || ds["type"].as_str() != Some("prometheus") {
        errors.push(format!(
            "{what}: datasource {ds} is not {{\"type\":\"prometheus\",\"uid\":\"{DATASOURCE_UID}\"}}"
        ));
    }
}

#[derive(Default)]
pub struct Counts {
    pub panels: usize,
    pub rows: usize,
    pub targets: usize,
    pub annotations: usize,
}

/// Checks one panel (a row's nested panels included); returns its rectangle.
pub fn check_panel(
    file: &str,
    p: &Value,
    defined: &BTreeSet<String>,
    ids: &mut BTreeSet<i64>,
    counts: &mut Counts,
    errors: &mut Vec<String>,
) -> Option<Rect> {
    let title = p["title"].as_str().unwrap_or_default();
    let what = format!("{file} panel {} \"{title}\"", p["id"]);
    match p["id"].as_i64() {
        Some(id) if !ids.insert(id) => errors.push(format!("{what}: duplicate panel id")),
        Some(_) => {}
        None => errors.push(format!("{what}: id is not an integer")),
    }
    if title.trim().is_empty() {
        errors.push(format!("{what}: no title"));
    }
    let rect = match grid_pos(p) {
        Ok(r) => Some(r),
        Err(e) => {
            errors.push(format!("{what}: {e}"));
            None
        }
    };
    let nested = p["panels"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    if p["type"].as_str() == Some("row") {
        counts.rows += 1;
        let collapsed = p["collapsed"].as_bool().unwrap_or(false);
        if !collapsed && !nested.is_empty() {
            errors.push(format!(
                "{what}: an expanded row keeps its panels at the top level, not in `panels`"
            ));
        }
        let mut rects = Vec::new();
        for child in nested {
            if child["type"].as_str() == Some("row") {
                errors.push(format!("{what}: a row inside a row"));
            }
            if let Some(r) = check_panel(file, child, defined, ids, counts, errors) {
                rects.push((child["id"].clone(), r));
            }
        }
        // A collapsed row's panels are laid out as if it were expanded.
        check_overlaps(&what, &rects, errors);
        return rect;
    }
    counts.panels += 1;
    if p["type"].as_str().unwrap_or_default().is_empty() {
        errors.push(format!("{what}: no type"));
    }
    if !nested.is_empty() {
        errors.push(format!("{what}: only rows hold panels"));
    }
    check_datasource(&what, &p["datasource"], errors);
    let targets = p["targets"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    if targets.is_empty() {
        errors.push(format!("{what}: no targets"));
    }
    let mut ref_ids = BTreeSet::new();
    for t in targets {
        counts.targets += 1;
        let ref_id = t["refId"].as_str().unwrap_or_default();
        let what = format!("{what} target {ref_id}");
        if ref_id.is_empty() {
            errors.push(format!("{what}: no refId"));
        } else if !ref_ids.insert(ref_id) {
            errors.push(format!("{what}: duplicate refId"));
        }
        if !t["datasource"].is_null() {
            check_datasource(&what, &t["datasource"], errors);
        }
        match t["expr"].as_str() {
            Some(expr) => check_query(&what, expr, defined, errors),
            None => errors.push(format!("{what}: no expr")),
        }
    }
    rect
}

pub fn check_overlaps(what: &str, rects: &[(Value, Rect)], errors: &mut Vec<String>) {
    for (i, (id_a, a)) in rects.iter().enumerate() {
        for (id_b, b) in &rects[i + 1..] {
            if a.overlaps(b) {
                errors.push(format!(
                    "{what}: panels {id_a} {a:?} and {id_b} {b:?} overlap"
                ));
            }
        }
    }
}

/// Checks one dashboard; returns the names of its variables.
pub fn check_dashboard(
    file: &str,
    d: &Value,
    counts: &mut Counts,
    errors: &mut Vec<String>,
) -> BTreeSet<String> {
    if d["schemaVersion"].as_i64() != Some(SCHEMA_VERSION) {
        errors.push(format!("{file}: schemaVersion is not {SCHEMA_VERSION}"));
    }
    if d["time"]["from"].as_str() != Some("now-15m") {
        errors.push(format!("{file}: time.from is not now-15m"));
    }
    if d["refresh"].as_str() != Some("5s") {
        errors.push(format!("{file}: refresh is not 5s"));
    }

    // Variables, each defined before the variables that use it.
    let mut defined = BTreeSet::new();
    let variables = d["templating"]["list"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    for v in variables {
        let name = v["name"].as_str().unwrap_or_default().to_owned();
        let what = format!("{file} variable {name:?}");
        let query = v["query"]["query"]
            .as_str()
            .or_else(|| v["query"].as_str())
            .unwrap_or_default();
        if v["type"].as_str() == Some("query") {
            check_datasource(&what, &v["datasource"], errors);
            if query.is_empty() {
                errors.push(format!("{what}: no query"));
            } else if let Err(e) = parse_variable_query(query) {
                errors.push(format!("{what}: not PromQL ({}): {query}", e.trim()));
            }
        }
        for used in variables_in(query) {
            if !defined.contains(&used) {
                errors.push(format!("{what}: uses ${used}, not defined before it"));
            }
        }
        if name == "testnet" && query != TESTNET_VARIABLE_QUERY {
            errors.push(format!("{what}: query is not {TESTNET_VARIABLE_QUERY}"));
        }
        if name.is_empty() || !defined.insert(name) {
            errors.push(format!("{what}: no name, or defined twice"));
        }
    }
    if !defined.contains("testnet") {
        errors.push(format!("{file}: no `testnet` template variable"));
    }

    // Annotations: Grafana's built-in one, and queries on our Prometheus.
    let mut fault_windows = false;
    for a in d["annotations"]["list"].as_array().into_iter().flatten() {
        if a["builtIn"].as_i64() == Some(1) {
            continue;
        }
        counts.annotations += 1;
        let what = format!("{file} annotation {}", a["name"]);
        check_datasource(&what, &a["datasource"], errors);
        match a["expr"].as_str() {
            Some(expr) => {
                check_query(&what, expr, &defined, errors);
                fault_windows |= expr.contains("testnet_fault_rules");
            }
            None => errors.push(format!("{what}: no expr")),
        }
    }
    if !fault_windows {
        errors.push(format!(
            "{file}: no annotation marks fault windows from testnet_fault_rules"
        ));
    }

    // Panels: ids unique in the dashboard, rectangles apart.
    let mut ids = BTreeSet::new();
    let mut rects = Vec::new();
    let panels = d["panels"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    if panels.is_empty() {
        errors.push(format!("{file}: no panels"));
    }
    for p in panels {
        if let Some(r) = check_panel(file, p, &defined, &mut ids, counts, errors) {
            rects.push((p["id"].clone(), r));
        }
    }
    check_overlaps(file, &rects, errors);
    defined
}
