//! `junit.xml`: one test suite per run (named after the scenario), one test case
//! per invariant, and a `run` case with an `<error>` when the tool failed.

use std::fmt::Write as _;

use super::{iso_utc, run_secs, RunReport};

pub(super) fn render(r: &RunReport) -> String {
    let failures = r.verdicts.iter().filter(|v| !v.passed).count();
    let errors = usize::from(r.error.is_some());
    let tests = r.verdicts.len() + errors;
    let time = run_secs(&r.observations);
    let scenario = escape(&r.scenario);
    let classname = escape(&format!("testnet.{}", r.scenario));

    let mut x = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let counts =
        format!("tests=\"{tests}\" failures=\"{failures}\" errors=\"{errors}\" time=\"{time:.3}\"");
    let _ = writeln!(x, "<testsuites name=\"testnet\" {counts}>");
    let _ = write!(x, "  <testsuite name=\"{scenario}\" {counts} skipped=\"0\"");
    if let Some(ts) = iso_utc(r.observations.started) {
        let _ = write!(x, " timestamp=\"{ts}\"");
    }
    x.push_str(">\n    <properties>\n");
    let _ = writeln!(x, "      <property name=\"seed\" value=\"{}\"/>", r.seed);
    if let Some(d) = &r.description {
        let _ = writeln!(
            x,
            "      <property name=\"description\" value=\"{}\"/>",
            escape(d)
        );
    }
    x.push_str("    </properties>\n");

    for v in &r.verdicts {
        let name = escape(&v.invariant);
        if v.passed {
            let _ = writeln!(
                x,
                "    <testcase name=\"{name}\" classname=\"{classname}\">\n      <system-out>{}</system-out>\n    </testcase>",
                escape_text(&v.summary)
            );
        } else {
            let body = if v.details.is_empty() {
                v.summary.clone()
            } else {
                v.details.join("\n")
            };
            let _ = writeln!(
                x,
                "    <testcase name=\"{name}\" classname=\"{classname}\">\n      <failure message=\"{}\" type=\"invariant\">{}</failure>\n    </testcase>",
                escape(&v.summary),
                escape_text(&body)
            );
        }
    }
    if let Some(e) = &r.error {
        let first = e.lines().next().unwrap_or_default();
        let _ = writeln!(
            x,
            "    <testcase name=\"run\" classname=\"{classname}\">\n      <error message=\"{}\" type=\"tool\">{}</error>\n    </testcase>",
            escape(first),
            escape_text(e)
        );
    }
    x.push_str("  </testsuite>\n</testsuites>\n");
    x
}

/// Escapes text for an XML attribute (double- or single-quoted): newlines and
/// tabs become character references so they survive attribute normalization.
/// Characters XML 1.0 cannot carry (most C0 controls) become U+FFFD.
pub(super) fn escape(s: &str) -> String {
    escape_xml(s, true)
}

/// Escapes text for XML element content (newlines kept as they are).
pub(super) fn escape_text(s: &str) -> String {
    escape_xml(s, false)
}

fn escape_xml(s: &str, attribute: bool) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\n' | '\t' | '\r' if !attribute => out.push(c),
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\n' => out.push_str("&#10;"),
            '\r' => out.push_str("&#13;"),
            '\t' => out.push_str("&#9;"),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}
