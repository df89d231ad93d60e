//! The command line's conventions: help on every argument, examples in the
//! help of the commands people reach for first.

use clap::CommandFactory;

use super::Cli;

/// `path` of every argument (not help/version) under `cmd` without help text.
fn bare(cmd: &clap::Command, path: &str, out: &mut Vec<String>) {
    for arg in cmd.get_arguments() {
        let id = arg.get_id().as_str();
        if matches!(id, "help" | "version") || arg.is_hide_set() {
            continue;
        }
        if arg.get_help().is_none() && arg.get_long_help().is_none() {
            out.push(format!("{path} {id}"));
        }
    }
    for sub in cmd.get_subcommands() {
        if sub.get_about().is_none() && sub.get_long_about().is_none() {
            out.push(format!("{path} {} (the command itself)", sub.get_name()));
        }
        bare(sub, &format!("{path} {}", sub.get_name()), out);
    }
}

#[test]
fn every_argument_has_help() {
    let mut missing = Vec::new();
    bare(&Cli::command(), "testnet", &mut missing);
    assert!(
        missing.is_empty(),
        "no help for:\n  {}",
        missing.join("\n  ")
    );
}

#[test]
fn the_first_commands_show_examples() {
    let mut cli = Cli::command();
    cli.build();
    for name in ["up", "run", "chaos", "load", "down", "check", "status"] {
        let sub = cli.find_subcommand_mut(name).unwrap();
        let help = sub.render_long_help().to_string();
        assert!(
            help.contains("Examples:"),
            "`testnet {name} --help` has no examples"
        );
    }
    Cli::command().debug_assert();
}

#[test]
fn the_name_comes_from_testnet_name_too() {
    let cli = Cli::command();
    let name = cli.get_arguments().find(|a| a.get_id() == "name").unwrap();
    assert_eq!(
        name.get_env().and_then(|e| e.to_str()),
        Some("TESTNET_NAME")
    );
}
