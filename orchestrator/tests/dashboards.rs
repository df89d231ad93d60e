// Checks of the monitoring content in `dashboards/`: the Grafana dashboards
// (JSON model), their provisioning files, the Prometheus alerting rules and
// their promtool tests. Every PromQL expression is parsed with `promql-parser`;
// every dashboard also goes through Grafana's own typed models and back (the
// grafana-foundation-sdk, in Python: `dashboards/roundtrip.rs`). Whether every
// expression returns data is for the live `up --monitor` test (tests/docker.rs);
// whether the rules behave is for `promtool test rules
// dashboards/prometheus/rules.test.yml`. Both walk the expressions with
// `testnet::monitor::all_expressions()`.

#[path = "dashboards/model.rs"]
mod model;
#[path = "dashboards/promql.rs"]
mod promql;
#[path = "dashboards/roundtrip.rs"]
mod roundtrip;

use std::collections::{BTreeMap, BTreeSet};

use testnet::monitor::{all_expressions, DASHBOARDS};

use model::{check_dashboard, dashboards, yaml, Counts, Rect, DATASOURCE_UID};

const ALERTS: &[&str] = &[
    "FinalityStalled",
    "PeersBelowExpected",
    "HandshakeFailureRateHigh",
    "UtxoDisagreement",
    "ConflictingCertificates",
    "TargetDown",
];

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
        for (key, e) in [("expr", expr), ("value_expr", value)] {
            if let Err(err) = promql::parse(e) {
                errors.push(format!(
                    "{what}: {key} is not PromQL ({}): {e:?}",
                    err.trim()
                ));
            }
        }
        if value.is_empty() || value.contains('\n') || value == expr {
            errors.push(format!(
                "{what}: value_expr must be one line, the value expr compares"
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
        let parsed = promql::parse(expr);
        assert!(parsed.is_ok(), "{what}: {expr}: {parsed:?}");
        let found = promql::selectors(&parsed.unwrap());
        assert!(!found.is_empty(), "{what}: none of our metrics in {expr}");
        assert!(seen.insert(what.clone()), "{what} listed twice");
    }
    println!(
        "{} expressions: {panel_exprs} panel queries, {annotation_exprs} annotation queries, {alerts} alert conditions and their {values} value_exprs",
        all.len()
    );
}

#[test]
fn the_checkers_catch_what_they_are_for() {
    assert!(promql::parse(r#"sum by (le) (rate(x{a="(["}[1m]))"#).is_ok());
    assert!(promql::parse("sum(rate(x[1m])").is_err());
    // Balanced, as the hand tokenizer checked, yet no PromQL: rate() of an
    // instant vector, a dangling operator.
    assert!(promql::parse(r#"rate(testnet_x{testnet="$testnet"})"#).is_err());
    assert!(promql::parse(r#"sum(testnet_x{testnet="$testnet"}) +"#).is_err());
    assert!(promql::parse("rate(x[$__rate_interval])").is_err());
    assert!(promql::parse_variable_query(r#"label_values(up{job="node"}, testnet)"#).is_ok());
    assert_eq!(
        promql::variables_in(r#"up{testnet="$testnet",node="${node}"} [[old]] $__rate_interval"#),
        ["__rate_interval", "node", "old", "testnet"]
            .map(String::from)
            .into()
    );
    let expr = r#"sum by (testnet) (testnet_peers{testnet="$testnet"}) / on() 0 * up
        + quantile(scalar(testnet_q{testnet="$testnet"}), rate(testnet_x{a=~"b|c"}[1m])) or other"#;
    let found: Vec<(String, Vec<String>)> = promql::selectors(&promql::parse(expr).unwrap())
        .into_iter()
        .map(|s| (s.metric, s.matchers))
        .collect();
    let owned = |m: &[&str]| m.iter().map(|m| m.to_string()).collect::<Vec<_>>();
    assert_eq!(
        found,
        [
            ("testnet_peers".into(), owned(&[r#"testnet="$testnet""#])),
            ("up".into(), vec![]),
            ("testnet_q".into(), owned(&[r#"testnet="$testnet""#])),
            ("testnet_x".into(), owned(&[r#"a=~"b|c""#])),
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
        "templating": {"list": [
            {"name": "v", "type": "query", "datasource": {"type": "prometheus", "uid": DATASOURCE_UID},
             "query": {"query": "label_values(up{job=\"node\"}, testnet"}}
        ]},
        "annotations": {"list": []},
        "panels": [
            {"id": 1, "type": "stat", "title": "a", "gridPos": {"x": 0, "y": 0, "w": 12, "h": 4},
             "datasource": {"type": "prometheus", "uid": "other"},
             "targets": [{"refId": "A", "expr": "up{node=\"$node\"}"}, {"refId": "A", "expr": ""},
                         {"refId": "B", "expr": "sum(testnet_x{testnet=\"$testnet\"}"}]},
            {"id": 1, "type": "stat", "title": "b", "gridPos": {"x": 6, "y": 2, "w": 12, "h": 4},
             "datasource": {"type": "prometheus", "uid": DATASOURCE_UID}, "targets": []},
            {"id": 3, "type": "row", "title": "c", "gridPos": {"x": 20, "y": 9, "w": 24, "h": 1}}
        ]
    });
    let mut errors = Vec::new();
    check_dashboard("broken.json", &broken, &mut Counts::default(), &mut errors);
    let text = errors.join("\n");
    for expected in [
        "schemaVersion is not 41",
        "variable \"v\": not PromQL",
        "target B: not PromQL",
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
