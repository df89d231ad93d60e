//! `junit.xml` through `quick-junit`: one test suite per run (named after the
//! scenario), one test case per invariant verdict, and a `run` case with an
//! `<error>` when the tool failed. `quick-junit` escapes the text and drops the
//! characters XML 1.0 cannot carry.

use std::time::Duration;

use quick_junit::{NonSuccessKind, Property, Report, TestCase, TestCaseStatus, TestSuite};

use super::{iso_utc, run_secs, RunReport};
use crate::checks::Verdict;

/// The report as JUnit XML.
pub(super) fn render(r: &RunReport) -> Result<String, quick_junit::SerializeError> {
    let classname = format!("testnet.{}", r.scenario);
    let time = Duration::from_secs_f64(run_secs(&r.observations));

    let mut suite = TestSuite::new(&r.scenario);
    suite.set_time(time);
    // RFC 3339 from humantime, read back into the timestamp type quick-junit
    // wants; a start time we cannot express leaves the attribute out.
    suite.timestamp = iso_utc(r.observations.started).and_then(|ts| ts.parse().ok());
    suite.add_property(Property::new("seed", r.seed.to_string()));
    if let Some(d) = &r.description {
        suite.add_property(Property::new("description", d));
    }
    for v in &r.verdicts {
        let mut case = TestCase::new(&v.invariant, verdict_status(v));
        case.set_classname(&classname);
        if v.passed {
            case.set_system_out(&v.summary);
        }
        suite.add_test_case(case);
    }
    if let Some(e) = &r.error {
        let mut status = TestCaseStatus::non_success(NonSuccessKind::Error);
        status
            .set_message(e.lines().next().unwrap_or_default())
            .set_type("tool")
            .set_description(e);
        let mut case = TestCase::new("run", status);
        case.set_classname(&classname);
        suite.add_test_case(case);
    }

    let mut report = Report::new("testnet");
    report.set_time(time);
    report.add_test_suite(suite);
    report.to_string()
}

/// Passed, or a failure whose message is the summary and whose text is the
/// details, one per line (the summary when there are none).
fn verdict_status(v: &Verdict) -> TestCaseStatus {
    if v.passed {
        return TestCaseStatus::success();
    }
    let body = if v.details.is_empty() {
        v.summary.clone()
    } else {
        v.details.join("\n")
    };
    let mut status = TestCaseStatus::non_success(NonSuccessKind::Failure);
    status
        .set_message(&v.summary)
        .set_type("invariant")
        .set_description(body);
    status
}
