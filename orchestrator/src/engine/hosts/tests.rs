use super::*;
use crate::engine::docker::{SwarmMember, SwarmNode};

fn host(name: &str, engine: &str) -> HostSpec {
    HostSpec {
        name: name.into(),
        engine: engine.into(),
        address: None,
    }
}

fn member(id: &str, state: &str, manager: bool) -> SwarmMember {
    SwarmMember {
        node_id: id.into(),
        state: state.into(),
        manager,
        addr: String::new(),
        error: None,
    }
}

fn node(id: &str, ready: bool) -> SwarmNode {
    SwarmNode {
        id: id.into(),
        hostname: id.into(),
        ready,
    }
}

#[test]
fn published_ports_are_reached_at_the_engine_host_or_the_given_address() {
    assert_eq!(
        host("a", "unix:///var/run/docker.sock").reach(),
        "127.0.0.1"
    );
    assert_eq!(host("b", "tcp://10.0.0.2:2375").reach(), "10.0.0.2");
    assert_eq!(host("b", "tcp://machine-b").reach(), "machine-b");
    let mut c = host("c", "unix:///tmp/d/sock");
    c.address = Some("10.213.0.2".into());
    assert_eq!(c.reach(), "10.213.0.2");
}

#[test]
fn host_names_and_engine_urls_are_checked() {
    assert!(host("a", "unix:///var/run/docker.sock")
        .problems()
        .is_empty());
    let p = host("a b", "10.0.0.2:2375").problems();
    assert_eq!(p.len(), 2, "{p:?}");
    assert!(p[0].contains("\"a b\""), "{p:?}");
    assert!(
        p[1].contains("hosts.a b.engine") && p[1].contains("tcp://HOST:2375"),
        "{p:?}"
    );
}

#[test]
fn one_swarm_finds_the_manager_of_hosts_that_are_all_ready_members() {
    let specs = [host("a", "unix:///a"), host("b", "tcp://b:2375")];
    let members = [
        member("ID-A", "active", false),
        member("ID-B", "active", true),
    ];
    let nodes = [node("ID-A", true), node("ID-B", true)];
    assert_eq!(one_swarm(&specs, &members, &nodes), Ok(1));
}

#[test]
fn one_swarm_says_which_host_is_outside_and_how_to_join_it() {
    let specs = [host("a", "unix:///a"), host("b", "tcp://b:2375")];
    let members = [
        member("ID-A", "active", true),
        member("", "inactive", false),
    ];
    let err = one_swarm(&specs, &members, &[node("ID-A", true)]).unwrap_err();
    assert!(
        err.contains("host b is not in a swarm (state inactive)"),
        "{err}"
    );
    assert!(
        err.contains("swarm init") && err.contains("swarm join"),
        "{err}"
    );
    // Active, but in another swarm: the manager does not list it.
    let members = [
        member("ID-A", "active", true),
        member("ID-X", "active", true),
    ];
    let err = one_swarm(&specs, &members, &[node("ID-A", true)]).unwrap_err();
    assert!(
        err.contains("host b (node ID-X) is not a member of host a's swarm"),
        "{err}"
    );
}

#[test]
fn one_swarm_refuses_no_manager_a_node_not_ready_and_a_host_given_twice() {
    let specs = [host("a", "unix:///a"), host("b", "tcp://b:2375")];
    let workers = [
        member("ID-A", "active", false),
        member("ID-B", "active", false),
    ];
    let err = one_swarm(&specs, &workers, &[]).unwrap_err();
    assert!(err.contains("none of them is a manager"), "{err}");
    let members = [
        member("ID-A", "active", true),
        member("ID-B", "active", false),
    ];
    let err = one_swarm(&specs, &members, &[node("ID-A", true), node("ID-B", false)]).unwrap_err();
    assert!(
        err.contains("host b is in the swarm but not ready"),
        "{err}"
    );
    let twice = [
        member("ID-A", "active", true),
        member("ID-A", "active", true),
    ];
    let err = one_swarm(&specs, &twice, &[node("ID-A", true)]).unwrap_err();
    assert!(err.contains("the same Docker daemon"), "{err}");
}
