//! The PromQL of the dashboards and rules, read with `promql-parser`: whether an
//! expression parses, the selectors of our metrics in it with their label
//! matchers, and the Grafana variables it names.

use std::collections::BTreeSet;
use std::sync::Once;

use promql_parser::parser::value::ValueType;
use promql_parser::parser::{self, Expr, Function};
use promql_parser::util::{walk_expr, ExprVisitor};

/// Parses a PromQL expression (a dashboard's as written: its variables sit in
/// label values, which are strings to PromQL).
pub fn parse(expr: &str) -> Result<Expr, String> {
    parser::parse(expr)
}

/// Parses a Grafana query variable's query: PromQL with Grafana's
/// `label_values(selector, label)` around it.
pub fn parse_variable_query(query: &str) -> Result<Expr, String> {
    static LABEL_VALUES: Once = Once::new();
    LABEL_VALUES.call_once(|| {
        // The label is a bare name, which PromQL reads as a selector.
        let f = Function::new(
            "label_values",
            vec![ValueType::Vector, ValueType::Vector],
            0,
            ValueType::Vector,
            false,
        );
        parser::register_extra_functions(vec![f]).expect("label_values is no PromQL function");
    });
    parser::parse(query)
}

/// A selector of one of our metrics (`testnet_*`, `up`): its name and its
/// label matchers as PromQL writes them (`testnet="$testnet"`).
#[derive(Debug, Clone, PartialEq)]
pub struct Selector {
    pub metric: String,
    pub matchers: Vec<String>,
}

impl Selector {
    pub fn has(&self, matcher: &str) -> bool {
        self.matchers.iter().any(|m| m == matcher)
    }
}

/// Collects the selectors of our metrics, in the expression's order.
#[derive(Default)]
struct Selectors(Vec<Selector>);

impl ExprVisitor for Selectors {
    type Error = std::convert::Infallible;

    fn pre_visit(&mut self, expr: &Expr) -> Result<bool, Self::Error> {
        let vs = match expr {
            Expr::VectorSelector(vs) => vs,
            Expr::MatrixSelector(ms) => &ms.vs,
            // `walk_expr` skips an aggregation's parameter (`quantile(x, ...)`).
            Expr::Aggregate(a) => {
                if let Some(param) = &a.param {
                    walk_expr(self, param)?;
                }
                return Ok(true);
            }
            _ => return Ok(true),
        };
        let name_matcher = vs
            .matchers
            .matchers
            .iter()
            .find(|m| m.name == "__name__")
            .map(|m| m.value.clone());
        let Some(metric) = vs.name.clone().or(name_matcher) else {
            return Ok(true);
        };
        if metric.starts_with("testnet_") || metric == "up" {
            let matchers = vs
                .matchers
                .matchers
                .iter()
                .chain(vs.matchers.or_matchers.iter().flatten())
                .filter(|m| m.name != "__name__")
                .map(|m| m.to_string())
                .collect();
            self.0.push(Selector { metric, matchers });
        }
        Ok(true)
    }
}

/// The selectors of our metrics in a parsed expression.
pub fn selectors(expr: &Expr) -> Vec<Selector> {
    let mut found = Selectors::default();
    let Ok(_) = walk_expr(&mut found, expr);
    found.0
}

/// Names of the variables a query refers to: `$name`, `${name}`, `${name:fmt}`, `[[name]]`.
pub fn variables_in(s: &str) -> BTreeSet<String> {
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

/// Checks a dashboard query: not empty, PromQL, only defined variables, every
/// selector of our metrics limited to `testnet="$testnet"`, and to the node of
/// `$node` somewhere when the dashboard has that variable.
pub fn check_query(what: &str, expr: &str, defined: &BTreeSet<String>, errors: &mut Vec<String>) {
    if expr.trim().is_empty() {
        errors.push(format!("{what}: empty expr"));
        return;
    }
    for v in variables_in(expr) {
        if !defined.contains(&v) {
            errors.push(format!(
                "{what}: ${v} is not a variable of this dashboard ({expr})"
            ));
        }
    }
    let found = match parse(expr) {
        Ok(parsed) => selectors(&parsed),
        Err(e) => {
            errors.push(format!("{what}: not PromQL ({}): {expr}", e.trim()));
            return;
        }
    };
    if found.is_empty() {
        errors.push(format!("{what}: queries none of our metrics: {expr}"));
    }
    for s in &found {
        if !s.has(r#"testnet="$testnet""#) {
            errors.push(format!(
                "{what}: {} is not limited to testnet=\"$testnet\" in {expr}",
                s.metric
            ));
        }
    }
    if defined.contains("node") && !found.iter().any(|s| s.has(r#"node="$node""#)) {
        errors.push(format!("{what}: does not use node=\"$node\": {expr}"));
    }
}
