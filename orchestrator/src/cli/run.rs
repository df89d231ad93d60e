//! `testnet run`: a scenario from up to report to down.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use super::{testnet, Ctx, Fail, Interrupt};
use crate::agent::HttpAgent;
use crate::run::{RunError, RunOptions};
use crate::scenario::Scenario;
use crate::testnet::HttpProbe;

#[derive(clap::Args)]
#[command(after_help = "Examples:\n  \
    testnet run testnets/partition-heal.scenario.yaml\n  \
    testnet run my.scenario.yaml --report out/ --keep   # look around afterwards, then `testnet down`\n\n\
    Exit codes: 0 every invariant holds, 1 one is violated, 2 an error of the tool,\n\
    130/143 interrupted (SIGINT/SIGTERM; the testnet is torn down).")]
pub struct Args {
    /// A scenario file (see testnets/*.scenario.yaml).
    file: PathBuf,
    /// Where to write report.json, junit.xml, report.html (and debug/ on
    /// failure). Default: testnet-report/<scenario>.
    #[arg(long)]
    report: Option<PathBuf>,
    /// Leave the testnet running afterwards.
    #[arg(long)]
    keep: bool,
    /// Use this node image instead of building one (the file's `image:` otherwise).
    #[arg(long)]
    image: Option<String>,
    /// Build the image around this statically linked testnet-node instead of
    /// compiling one.
    #[arg(long, env = "TESTNET_NODE_BINARY")]
    node_binary: Option<PathBuf>,
    /// How long `up` may take before the run fails as a tool error.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "60s")]
    timeout: Duration,
}

pub async fn exec(ctx: &Ctx, a: Args) -> Result<ExitCode, Fail> {
    let scenario = Scenario::load(&a.file)?;
    let engine = super::engine_on(&scenario.testnet.hosts).await?;
    let name = ctx.name_or(Some(&scenario.name));
    let image = match a.image.or(scenario.testnet.image.clone()) {
        Some(tag) => tag,
        None => super::image::build(ctx, &engine, a.node_binary).await?,
    };
    let node_image = match &scenario.testnet.node {
        Some(spec) => {
            Some(crate::image::ensure_foreign(&engine, spec, &|l: &str| ctx.progress(l)).await?)
        }
        None => None,
    };
    let mut images = vec![image.as_str()];
    images.extend(node_image.as_deref());
    super::up::spread_images(ctx, &engine, &scenario.testnet, &images).await?;
    let interrupt = Interrupt::listen("interrupted: healing and tearing down...");
    let opts = RunOptions {
        image,
        node_image,
        report_dir: a
            .report
            .unwrap_or_else(|| PathBuf::from("testnet-report").join(&scenario.name)),
        keep: a.keep,
        readiness: a.timeout,
        quiescence: crate::run::QUIESCENCE,
        hurry: interrupt.hurry.clone(),
    };
    ctx.progress(&format!(
        "scenario {}: {}, {} timeline steps",
        scenario.name,
        scenario.testnet.describe_nodes(),
        scenario.timeline.len()
    ));
    if scenario.nemesis_steps > 0 {
        let drawn = &scenario.timeline[scenario.timeline.len() - scenario.nemesis_steps..];
        ctx.progress(&format!(
            "nemesis: {} faults drawn from seed {} (replay: testnet run {}):",
            drawn.len(),
            scenario.seed,
            opts.report_dir.join("scenario.yaml").display()
        ));
        for step in drawn {
            let held = step
                .duration
                .map(|d| format!(" for {d:?}"))
                .unwrap_or_default();
            ctx.progress(&format!("  +{:?} {}{held}", step.at, step.fault.label()));
        }
    }
    let (probe, agent) = (HttpProbe::default(), HttpAgent::default());
    let _lock = super::lock(&name, "run")?;
    let tn = testnet(&name, &engine, &probe);
    let progress = |l: &str| ctx.progress(l);
    let report =
        match crate::run::run(&tn, &agent, &scenario, &opts, &progress, &interrupt.token).await {
            Ok(report) => report,
            Err(RunError::Interrupted) => {
                eprintln!(
                    "interrupted (report, if any, in {})",
                    opts.report_dir.display()
                );
                return Ok(interrupt.exit_code());
            }
            Err(e) => {
                return Err(Fail(format!(
                    "{e} (report, if any, in {})",
                    opts.report_dir.display()
                )))
            }
        };
    for v in &report.verdicts {
        println!(
            "{} {:<40} {}",
            if v.passed { "PASS" } else { "FAIL" },
            v.invariant,
            v.summary
        );
    }
    println!(
        "scenario {}: {}; report in {}",
        report.scenario,
        if report.passed { "passed" } else { "FAILED" },
        opts.report_dir.display()
    );
    Ok(match report.passed {
        true => ExitCode::SUCCESS,
        false => ExitCode::from(1),
    })
}
