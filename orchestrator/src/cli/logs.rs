//! `testnet logs`: one node's output, or every node's with a prefix.

use std::process::ExitCode;

use super::{Ctx, Fail};
use crate::engine::hosts::Hosts;
use crate::engine::{ContainerInfo, Engine, Label, LABEL_NODE};

#[derive(clap::Args)]
pub struct Args {
    /// The node (n2); every node's logs without it.
    node: Option<String>,
    /// Keep printing new lines until interrupted.
    #[arg(long)]
    follow: bool,
    /// Lines from the end of each log to start with.
    #[arg(long, default_value_t = 100)]
    tail: usize,
}

pub async fn exec(ctx: &Ctx, a: Args) -> Result<ExitCode, Fail> {
    let name = ctx.name();
    let engine = super::engine_of(&name).await?;
    let nodes = engine.list_containers(Label::testnet(Some(&name))).await?;
    if nodes.is_empty() {
        return Err(Fail(format!("no testnet named {name:?} is running")));
    }
    let chosen = match &a.node {
        Some(n) => vec![pick(&nodes, n, &name)?],
        None => nodes,
    };
    // One node: its lines as they are; several: each prefixed with its container.
    let prefix = |c: &ContainerInfo| match a.node {
        Some(_) => String::new(),
        None => format!("{}| ", c.name),
    };
    if a.follow {
        // Following ends with the containers or with a signal (exit 128 + it).
        let interrupt = super::Interrupt::listen("interrupted: no longer following");
        let follows = chosen.iter().map(|c| follow(&engine, c, a.tail, prefix(c)));
        tokio::select! {
            results = futures::future::join_all(follows) => {
                for r in results {
                    r?;
                }
            }
            _ = interrupt.token.cancelled() => return Ok(interrupt.exit_code()),
        }
    } else {
        for c in &chosen {
            for line in engine.logs(&c.name, a.tail).await?.lines() {
                println!("{}{line}", prefix(c));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn follow(
    engine: &Hosts,
    c: &ContainerInfo,
    tail: usize,
    prefix: String,
) -> Result<(), crate::engine::EngineError> {
    engine.follow_logs(&c.name, tail, &prefix).await
}

fn pick(nodes: &[ContainerInfo], node: &str, testnet: &str) -> Result<ContainerInfo, Fail> {
    let label = |c: &ContainerInfo| c.labels.get(LABEL_NODE).cloned();
    nodes
        .iter()
        .find(|c| label(c).as_deref() == Some(node))
        .cloned()
        .ok_or_else(|| {
            let known: Vec<String> = nodes.iter().filter_map(label).collect();
            Fail(format!(
                "no node {node:?} in testnet {testnet:?}; nodes are {}",
                known.join(", ")
            ))
        })
}
