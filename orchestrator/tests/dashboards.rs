// Structural checks of the monitoring content in `dashboards/`, without Docker or
// network: the Grafana dashboards (JSON model), their provisioning files, the
// Prometheus alerting rules and their promtool tests. Whether every expression
// returns data is for the live `up --monitor` test (tests/docker.rs); whether
// the rules behave is for `promtool test rules dashboards/prometheus/rules.test.yml`.
// Both walk the expressions with `testnet::monitor::all_expressions()`.

mod dashboard_checks {
    use std::collections::{BTreeMap, BTreeSet};
    use std::path::{Path, PathBuf};

    use serde_json::Value;

    use testnet::monitor::{all_expressions, DASHBOARDS};

    const DATASOURCE_UID: &str = "testnet-prometheus";
    const GRID_WIDTH: i64 = 24;
    const TESTNET_VARIABLE_QUERY: &str = r#"label_values(up{job="node"}, testnet)"#;
    const ALERTS: &[&str] = &[
        "FinalityStalled",
        "PeersBelowExpected",
        "HandshakeFailureRateHigh",
        "UtxoDisagreement",
        "ConflictingCertificates",
        "TargetDown",
    ];

    fn root() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../dashboards")
    }

    fn read(path: &Path) -> String {
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    fn yaml(relative: &str) -> serde_yaml_ng::Value {
        let path = root().join(relative);
        serde_yaml_ng::from_str(&read(&path)).unwrap_or_else(|e| panic!("{relative}: {e}"))
    }

    /// Every dashboard file, sorted, parsed.
    fn dashboards() -> Vec<(String, Value)> {
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
    struct Rect {
        x: i64,
        y: i64,
        w: i64,
        h: i64,
    }

    impl Rect {
        fn overlaps(&self, o: &Rect) -> bool {
            self.x < o.x + o.w
                && o.x < self.x + self.w
                && self.y < o.y + o.h
                && o.y < self.y + self.h
        }
    }

    fn grid_pos(p: &Value) -> Result<Rect, String> {
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

    /// Names of the variables a query refers to: `$name`, `${name}`, `${name:fmt}`, `[[name]]`.
    fn variables_in(s: &str) -> BTreeSet<String> {
        let ident = |t: &str| -> String {
            t.chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect()
        };
        let mut out = BTreeSet::new();
        for (i, _) in s.match_indices('$') {
            let rest = &s[i + 1..];
            let name = match rest.strip_prefix('{') {
                Some(braced) => ident(braced),
                None => ident(rest),
            };
            out.insert(name);
        }
        for (i, _) in s.match_indices("[[") {
            out.insert(ident(&s[i + 2..]));
        }
        out
    }

    /// Index just past the quoted string that starts at `i`.
    fn skip_string(b: &[u8], i: usize) -> usize {
        let quote = b[i];
        let mut j = i + 1;
        while j < b.len() && b[j] != quote {
            if b[j] == b'\\' {
                j += 1;
            }
            j += 1;
        }
        j + 1
    }

    /// Index of the `close` matching the bracket at `i`, strings skipped.
    fn skip_to(b: &[u8], i: usize, close: u8) -> usize {
        let mut j = i + 1;
        while j < b.len() && b[j] != close {
            if matches!(b[j], b'"' | b'\'' | b'`') {
                j = skip_string(b, j);
            } else {
                j += 1;
            }
        }
        j
    }

    /// The selectors of our metrics (`testnet_*`, `up`) in an expression, each
    /// with its label matchers (`None`: the metric is used without braces).
    fn selectors(expr: &str) -> Vec<(String, Option<String>)> {
        let b = expr.as_bytes();
        let mut out = Vec::new();
        let mut i = 0;
        while i < b.len() {
            let c = b[i];
            if matches!(c, b'"' | b'\'' | b'`') {
                i = skip_string(b, i);
            } else if c == b'{' {
                i = skip_to(b, i, b'}') + 1;
            } else if c == b'[' {
                i = skip_to(b, i, b']') + 1;
            } else if c.is_ascii_digit() || c == b'.' {
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'.') {
                    i += 1;
                }
            } else if c.is_ascii_alphabetic() || c == b'_' || c == b':' {
                let start = i;
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_' || b[i] == b':')
                {
                    i += 1;
                }
                let name = &expr[start..i];
                if name.starts_with("testnet_") || name == "up" {
                    let mut j = i;
                    while j < b.len() && b[j].is_ascii_whitespace() {
                        j += 1;
                    }
                    if j < b.len() && b[j] == b'{' {
                        let end = skip_to(b, j, b'}');
                        out.push((
                            name.to_owned(),
                            Some(expr[j + 1..end.min(b.len())].to_owned()),
                        ));
                        i = end + 1;
                    } else {
                        out.push((name.to_owned(), None));
                    }
                }
            } else {
                i += 1;
            }
        }
        out
    }

    /// `()`, `[]` and `{}` balanced outside string literals.
    fn balanced(expr: &str) -> bool {
        let b = expr.as_bytes();
        let mut stack = Vec::new();
        let mut i = 0;
        while i < b.len() {
            match b[i] {
                b'"' | b'\'' | b'`' => {
                    i = skip_string(b, i);
                    continue;
                }
                c @ (b'(' | b'[' | b'{') => stack.push(c),
                b')' if stack.pop() != Some(b'(') => return false,
                b']' if stack.pop() != Some(b'[') => return false,
                b'}' if stack.pop() != Some(b'{') => return false,
                _ => {}
            }
            i += 1;
        }
        stack.is_empty() && i == b.len()
    }

    /// Checks a dashboard query: not empty, balanced, only defined variables, every
    /// selector of our metrics limited to `testnet="$testnet"`, and to the node of
    /// `$node` somewhere when the dashboard has that variable.
    fn check_query(what: &str, expr: &str, defined: &BTreeSet<String>, errors: &mut Vec<String>) {
        if expr.trim().is_empty() {
            errors.push(format!("{what}: empty expr"));
            return;
        }
        if !balanced(expr) {
            errors.push(format!("{what}: unbalanced brackets in {expr}"));
        }
        for v in variables_in(expr) {
            if !defined.contains(&v) {
                errors.push(format!(
                    "{what}: ${v} is not a variable of this dashboard ({expr})"
                ));
            }
        }
        let found = selectors(expr);
        if found.is_empty() {
            errors.push(format!("{what}: queries none of our metrics: {expr}"));
        }
        for (metric, matchers) in found {
            match matchers {
                Some(m) if m.contains(r#"testnet="$testnet""#) => {}
                _ => errors.push(format!(
                    "{what}: {metric} is not limited to testnet=\"$testnet\" in {expr}"
                )),
            }
        }
        if defined.contains("node") && !expr.contains(r#"node="$node""#) {
            errors.push(format!("{what}: does not use node=\"$node\": {expr}"));
        }
    }

    fn check_datasource(what: &str, ds: &Value, errors: &mut Vec<String>) {
        if ds["uid"].as_str() != Some(DATASOURCE_UID) || ds["type"].as_str() != Some("prometheus") {
            errors.push(format!(
                "{what}: datasource {ds} is not {{\"type\":\"prometheus\",\"uid\":\"{DATASOURCE_UID}\"}}"
            ));
        }
    }

    #[derive(Default)]
    struct Counts {
        panels: usize,
        rows: usize,
        targets: usize,
        annotations: usize,
    }

    /// Checks one panel (a row's nested panels included); returns its rectangle.
    fn check_panel(
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

    fn check_overlaps(what: &str, rects: &[(Value, Rect)], errors: &mut Vec<String>) {
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
    fn check_dashboard(
        file: &str,
        d: &Value,
        counts: &mut Counts,
        errors: &mut Vec<String>,
    ) -> BTreeSet<String> {
        if d["schemaVersion"].as_i64() != Some(39) {
            errors.push(format!("{file}: schemaVersion is not 39"));
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

    #[test]
    fn dashboards_are_well_formed() {
        let dashboards = dashboards();
        // What `up --monitor` embeds and mounts is every dashboard on disk.
        let mut on_disk: Vec<&str> = dashboards.iter().map(|(f, _)| f.as_str()).collect();
        let mut embedded: Vec<&str> = DASHBOARDS.iter().map(|(f, _)| *f).collect();
        on_disk.sort();
        embedded.sort();
        assert_eq!(
            on_disk, embedded,
            "monitor.rs DASHBOARDS and dashboards/grafana/dashboards differ"
        );
        let mut errors = Vec::new();
        let mut counts = Counts::default();
        let mut uids = BTreeMap::new();
        let mut titles = BTreeMap::new();
        for (file, d) in &dashboards {
            let uid = d["uid"].as_str().unwrap_or_default();
            let title = d["title"].as_str().unwrap_or_default();
            if uid.is_empty() || uid.len() > 40 {
                errors.push(format!("{file}: uid {uid:?} empty or longer than 40"));
            }
            if title.is_empty() {
                errors.push(format!("{file}: no title"));
            }
            if let Some(other) = uids.insert(uid.to_owned(), file) {
                errors.push(format!("{file}: uid {uid:?} also used by {other}"));
            }
            if let Some(other) = titles.insert(title.to_owned(), file) {
                errors.push(format!("{file}: title {title:?} also used by {other}"));
            }
            let vars = check_dashboard(file, d, &mut counts, &mut errors);
            if *file == "node.json" && !vars.contains("node") {
                errors.push("node.json: no `node` template variable".into());
            }
        }
        assert!(
            errors.is_empty(),
            "{} problems:\n{}",
            errors.len(),
            errors.join("\n")
        );
        println!(
            "checked {} dashboards: {} panels (and {} rows), {} panel queries, {} annotation queries",
            dashboards.len(),
            counts.panels,
            counts.rows,
            counts.targets,
            counts.annotations
        );
    }

    #[test]
    fn provisioning_points_grafana_at_prometheus_and_the_dashboards() {
        let ds = yaml("grafana/provisioning/datasources/prometheus.yaml");
        let list = ds["datasources"]
            .as_sequence()
            .expect("datasources: a list");
        let ours: Vec<_> = list
            .iter()
            .filter(|d| d["uid"].as_str() == Some(DATASOURCE_UID))
            .collect();
        assert_eq!(ours.len(), 1, "one datasource with uid {DATASOURCE_UID}");
        let ours = ours[0];
        assert_eq!(ours["type"].as_str(), Some("prometheus"));
        assert_eq!(ours["url"].as_str(), Some("http://prometheus:9090"));
        assert_eq!(ours["isDefault"].as_bool(), Some(true));
        assert_eq!(
            list.iter()
                .filter(|d| d["isDefault"].as_bool() == Some(true))
                .count(),
            1,
            "one default datasource"
        );

        let dash = yaml("grafana/provisioning/dashboards/testnet.yaml");
        let providers = dash["providers"].as_sequence().expect("providers: a list");
        assert!(
            providers.iter().any(|p| p["type"].as_str() == Some("file")
                && p["options"]["path"].as_str() == Some("/var/lib/grafana/dashboards")),
            "a file provider reading /var/lib/grafana/dashboards"
        );
    }

    #[test]
    fn rules_have_severity_summary_and_value_expr() {
        let rules = yaml("prometheus/rules.yml");
        let groups = rules["groups"].as_sequence().expect("groups: a list");
        let group = groups
            .iter()
            .find(|g| g["name"].as_str() == Some("testnet"))
            .expect("a rule group named testnet");
        let mut names = BTreeSet::new();
        let mut errors = Vec::new();
        for rule in group["rules"].as_sequence().expect("rules: a list") {
            let name = rule["alert"].as_str().unwrap_or_default();
            let what = format!("rules.yml alert {name:?}");
            if name.is_empty() || !names.insert(name) {
                errors.push(format!("{what}: no name, or defined twice"));
            }
            let expr = rule["expr"].as_str().unwrap_or_default().trim();
            let value = rule["annotations"]["value_expr"]
                .as_str()
                .unwrap_or_default();
            if expr.is_empty() || !balanced(expr) {
                errors.push(format!("{what}: expr empty or unbalanced"));
            }
            if value.is_empty() || !balanced(value) || value.contains('\n') || value == expr {
                errors.push(format!(
                    "{what}: value_expr must be one balanced line, the value expr compares"
                ));
            }
            if expr.contains('$') || value.contains('$') {
                errors.push(format!("{what}: Grafana variables in a rule"));
            }
            if !matches!(
                rule["labels"]["severity"].as_str(),
                Some("warning" | "critical")
            ) {
                errors.push(format!("{what}: severity is not warning or critical"));
            }
            for a in ["summary", "description"] {
                if rule["annotations"][a]
                    .as_str()
                    .unwrap_or_default()
                    .is_empty()
                {
                    errors.push(format!("{what}: no {a}"));
                }
            }
        }
        for a in ALERTS {
            if !names.contains(a) {
                errors.push(format!("rules.yml: no alert {a}"));
            }
        }
        assert!(errors.is_empty(), "{}", errors.join("\n"));
    }

    #[test]
    fn every_alert_has_a_promtool_test_that_fires_it_and_one_that_does_not() {
        let tests = yaml("prometheus/rules.test.yml");
        let files: Vec<_> = tests["rule_files"]
            .as_sequence()
            .expect("rule_files: a list")
            .iter()
            .filter_map(|f| f.as_str())
            .collect();
        assert_eq!(files, ["rules.yml"]);
        let mut fires = BTreeSet::new();
        let mut silent = BTreeSet::new();
        for t in tests["tests"].as_sequence().expect("tests: a list") {
            for case in t["alert_rule_test"].as_sequence().into_iter().flatten() {
                let name = case["alertname"].as_str().unwrap_or_default().to_owned();
                let expected = case["exp_alerts"].as_sequence().map_or(0, Vec::len);
                if expected > 0 {
                    fires.insert(name);
                } else {
                    silent.insert(name);
                }
            }
        }
        for a in ALERTS {
            assert!(fires.contains(*a), "no promtool case fires {a}");
            assert!(silent.contains(*a), "no promtool case keeps {a} silent");
        }
    }

    #[test]
    fn all_expressions_lists_every_query_once() {
        let all = all_expressions();
        let mut counts = Counts::default();
        let mut errors = Vec::new();
        for (file, d) in &dashboards() {
            check_dashboard(file, d, &mut counts, &mut errors);
        }
        let alerts = ALERTS.len();
        let panel_exprs = all.iter().filter(|(w, _)| w.contains(" panel ")).count();
        let annotation_exprs = all
            .iter()
            .filter(|(w, _)| w.contains(" annotation "))
            .count();
        let conditions = all
            .iter()
            .filter(|(w, _)| w.ends_with(" expr") && w.starts_with("rules.yml alert "))
            .count();
        let values = all
            .iter()
            .filter(|(w, _)| w.ends_with(" value_expr"))
            .count();
        assert_eq!(panel_exprs, counts.targets);
        assert_eq!(annotation_exprs, counts.annotations);
        assert_eq!((conditions, values), (alerts, alerts));
        assert_eq!(
            all.len(),
            panel_exprs + annotation_exprs + conditions + values
        );
        let mut seen = BTreeSet::new();
        for (what, expr) in &all {
            assert!(!expr.trim().is_empty() && balanced(expr), "{what}: {expr}");
            assert!(seen.insert(what.clone()), "{what} listed twice");
        }
        println!(
            "{} expressions: {panel_exprs} panel queries, {annotation_exprs} annotation queries, {alerts} alert conditions and their {values} value_exprs",
            all.len()
        );
    }

    #[test]
    fn the_checkers_catch_what_they_are_for() {
        assert!(balanced(r#"sum by (le) (rate(x{a="(["}[1m]))"#));
        assert!(!balanced("sum(rate(x[1m])"));
        assert_eq!(
            variables_in(r#"up{testnet="$testnet",node="${node}"} [[old]] $__rate_interval"#),
            ["__rate_interval", "node", "old", "testnet"]
                .map(String::from)
                .into()
        );
        assert_eq!(
            selectors(
                r#"sum by (testnet) (testnet_peers{testnet="$testnet"}) / on() 0 * up + testnet_x"#
            ),
            vec![
                (
                    "testnet_peers".to_owned(),
                    Some(r#"testnet="$testnet""#.to_owned())
                ),
                ("up".to_owned(), None),
                ("testnet_x".to_owned(), None),
            ]
        );
        let a = Rect {
            x: 0,
            y: 0,
            w: 12,
            h: 8,
        };
        assert!(a.overlaps(&Rect {
            x: 11,
            y: 7,
            w: 2,
            h: 2
        }));
        assert!(!a.overlaps(&Rect {
            x: 12,
            y: 0,
            w: 12,
            h: 8
        }));
        assert!(!a.overlaps(&Rect {
            x: 0,
            y: 8,
            w: 24,
            h: 1
        }));

        // A broken dashboard is reported, not accepted.
        let broken = serde_json::json!({
            "schemaVersion": 39, "time": {"from": "now-15m"}, "refresh": "5s",
            "templating": {"list": []},
            "annotations": {"list": []},
            "panels": [
                {"id": 1, "type": "stat", "title": "a", "gridPos": {"x": 0, "y": 0, "w": 12, "h": 4},
                 "datasource": {"type": "prometheus", "uid": "other"},
                 "targets": [{"refId": "A", "expr": "up{node=\"$node\"}"}, {"refId": "A", "expr": ""}]},
                {"id": 1, "type": "stat", "title": "b", "gridPos": {"x": 6, "y": 2, "w": 12, "h": 4},
                 "datasource": {"type": "prometheus", "uid": DATASOURCE_UID}, "targets": []},
                {"id": 3, "type": "row", "title": "c", "gridPos": {"x": 20, "y": 9, "w": 24, "h": 1}}
            ]
        });
        let mut errors = Vec::new();
        check_dashboard("broken.json", &broken, &mut Counts::default(), &mut errors);
        let text = errors.join("\n");
        for expected in [
            "no `testnet` template variable",
            "no annotation marks fault windows",
            "is not {\"type\":\"prometheus\",\"uid\":\"testnet-prometheus\"}",
            "$node is not a variable",
            "is not limited to testnet=",
            "duplicate refId",
            "empty expr",
            "duplicate panel id",
            "outside the 24-wide grid",
            "no targets",
            "overlap",
        ] {
            assert!(
                text.contains(expected),
                "{expected:?} not reported in:\n{text}"
            );
        }
    }
}
