//! `testnet down`: remove everything of a testnet, of every testnet, or of
//! every testnet whose owner is gone.

use std::collections::BTreeSet;
use std::process::ExitCode;

use super::{Ctx, Fail};
use crate::engine::hosts::Hosts;
use crate::engine::{Engine, Label, LABEL_TESTNET};
use crate::lifecycle::{self, Removed};
use crate::state::StateDir;

#[derive(clap::Args)]
#[command(
    after_help = "Examples:\n  testnet down\n  testnet --name demo down\n  testnet down --all     # every testnet on this engine\n  testnet down --stale   # what killed runs left behind"
)]
pub struct Args {
    /// Every testnet on this engine (but those a running command holds).
    #[arg(long, conflicts_with = "stale")]
    all: bool,
    /// Every testnet whose owner (a `testnet run` that was killed) is gone.
    #[arg(long)]
    stale: bool,
}

pub async fn exec(ctx: &Ctx, a: Args) -> Result<ExitCode, Fail> {
    if a.all || a.stale {
        let names = match a.stale {
            true => stale_names(),
            false => all_names(&super::engine_on(&[]).await?).await?,
        };
        return down_many(&names, if a.stale { "stale " } else { "" }).await;
    }
    let name = ctx.name();
    let _lock = super::lock(&name, "down")?;
    // Every host of the testnet's plan (the plan goes with the state dir).
    let engine = super::engine_of(&name).await?;
    let removed = lifecycle::down(&engine, Some(&name)).await?;
    println!("{} of testnet {name:?}", said(&removed));
    Ok(ExitCode::SUCCESS)
}

fn said(r: &Removed) -> String {
    format!(
        "removed {} containers, {} networks, {} volumes",
        r.containers.len(),
        r.networks.len(),
        r.volumes.len()
    )
}

/// Testnets with a state dir here whose owning process is gone.
fn stale_names() -> Vec<String> {
    StateDir::all(&StateDir::base())
        .into_iter()
        .filter(|sd| sd.stale_owner().is_some())
        .map(|sd| sd.name())
        .collect()
}

/// Every testnet name that labels a container or network of the local engine
/// (or has a state dir here: a multi-host testnet may have nothing local).
async fn all_names(engine: &Hosts) -> Result<Vec<String>, Fail> {
    let label = Label::testnet(None);
    let mut names: BTreeSet<String> = BTreeSet::new();
    for c in engine.list_containers(label).await? {
        names.extend(c.labels.get(LABEL_TESTNET).cloned());
    }
    for n in engine.list_networks(Some(label)).await? {
        names.extend(n.labels.get(LABEL_TESTNET).cloned());
    }
    names.extend(
        StateDir::all(&StateDir::base())
            .into_iter()
            .filter(|sd| sd.plan().is_some_and(|p| !p.hosts.is_empty()))
            .map(|sd| sd.name()),
    );
    Ok(names.into_iter().collect())
}

/// Removes each testnet whose lock is free; names the ones held.
async fn down_many(names: &[String], kind: &str) -> Result<ExitCode, Fail> {
    if names.is_empty() {
        println!("no {kind}testnets");
        return Ok(ExitCode::SUCCESS);
    }
    let mut first_error = None;
    for name in names {
        let lock = match super::lock(name, "down") {
            Ok(lock) => lock,
            Err(Fail(why)) => {
                println!("left {name:?}: {why}");
                continue;
            }
        };
        let removed = match super::engine_of(name).await {
            Ok(engine) => lifecycle::down(&engine, Some(name))
                .await
                .map_err(Fail::from),
            Err(e) => Err(e),
        };
        match removed {
            Ok(removed) => println!("{} of {kind}testnet {name:?}", said(&removed)),
            Err(e) => {
                println!("failed to remove {name:?}: {}", e.0);
                first_error.get_or_insert(e);
            }
        }
        drop(lock);
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok(ExitCode::SUCCESS),
    }
}
