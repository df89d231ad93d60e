//! `workload_ok`: a workload command ran to its end with exit status 0, did
//! some operations, and none of them failed.

use super::Verdict;
use crate::observe::Observations;

pub fn workload_ok(obs: &Observations) -> Verdict {
    let Some(r) = &obs.command else {
        return Verdict::new(
            "workload_ok",
            vec![
                "no workload command ran (give the scenario `workload: { command: [...] }`)".into(),
            ],
            String::new(),
        );
    };
    let mut problems = Vec::new();
    let tail = || match r.tail.is_empty() {
        true => String::new(),
        false => format!("; its last lines:\n{}", r.tail.join("\n")),
    };
    match r.exit_code {
        Some(0) => {}
        Some(code) => problems.push(format!("the workload exited {code}{}", tail())),
        None => problems.push(format!(
            "the workload did not finish within its {:.0}s and was stopped{}",
            r.secs,
            tail()
        )),
    }
    let (ok, failed) = (r.succeeded(), r.failed());
    if ok + failed == 0 {
        problems.push(
            "the workload printed no operation (JSON lines with an `ok` field), so nothing \
             shows it did any work"
                .into(),
        );
    }
    if failed > 0 {
        problems.push(format!(
            "{failed} of {} operations failed, first: {}",
            ok + failed,
            r.failures.first().map_or("-", String::as_str)
        ));
        problems.extend(r.failures.iter().skip(1).cloned());
    }
    let latency = match (r.latency_ms_p50, r.latency_ms_p99) {
        (Some(p50), Some(p99)) => format!(", latency p50 {p50} ms, p99 {p99} ms"),
        _ => String::new(),
    };
    Verdict::new(
        "workload_ok",
        problems,
        format!("{ok} operations succeeded, none failed, exit 0{latency}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::command::{parse_output, CommandReport};

    fn ran(exit: Option<i64>, output: &str) -> Observations {
        let mut r = CommandReport {
            exit_code: exit,
            secs: 12.0,
            ..CommandReport::default()
        };
        parse_output(output, &mut r);
        Observations {
            command: Some(r),
            ..Observations::default()
        }
    }

    #[test]
    fn a_clean_workload_passes_and_each_way_of_failing_names_itself() {
        let good = "{\"op\":\"put\",\"ok\":true,\"latency_ms\":4}\n";
        let v = workload_ok(&ran(Some(0), good));
        assert!(
            v.passed && v.summary.contains("1 operations succeeded"),
            "{v:?}"
        );
        let v = workload_ok(&Observations::default());
        assert!(
            !v.passed && v.summary.contains("no workload command ran"),
            "{v:?}"
        );
        let v = workload_ok(&ran(Some(3), &format!("{good}boom\n")));
        assert!(
            !v.passed && v.summary.contains("exited 3") && v.summary.contains("boom"),
            "{v:?}"
        );
        let v = workload_ok(&ran(None, good));
        assert!(!v.passed && v.summary.contains("did not finish"), "{v:?}");
        let v = workload_ok(&ran(Some(0), "all fine, trust me\n"));
        assert!(
            !v.passed && v.summary.contains("printed no operation"),
            "{v:?}"
        );
        let bad = format!("{good}{{\"op\":\"get\",\"ok\":false,\"error\":\"timeout\"}}\n");
        let v = workload_ok(&ran(Some(0), &bad));
        assert!(
            !v.passed
                && v.summary.contains("1 of 2 operations failed")
                && v.summary.contains("timeout"),
            "{v:?}"
        );
    }
}
