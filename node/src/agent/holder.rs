//! Holder mode: the agent's container owns the network and PID namespaces and
//! the node under test runs in another container that joined both (the
//! Kubernetes pod pattern). The node's image needs nothing of ours. The agent
//! finds the node's processes in `/proc`: every live process of the shared PID
//! namespace outside the agent's own cgroup (a `docker exec` into the holder
//! stays in the holder's cgroup, so it is never taken for the node).

use std::collections::BTreeSet;
use std::path::Path;

/// One process of the shared PID namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proc {
    pub pid: u32,
    pub ppid: u32,
    /// The state letter of `/proc/PID/stat` (`R`, `S`, `T` stopped, `Z` zombie...).
    pub state: char,
}

/// `(pid, state, ppid)` from the text of `/proc/PID/stat`. The command name
/// is in parentheses and may hold spaces and parentheses itself: the fields
/// after it follow the last `)`.
pub fn parse_stat(text: &str) -> Option<Proc> {
    let pid = text.split_whitespace().next()?.parse().ok()?;
    let rest = &text[text.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let ppid = fields.next()?.parse().ok()?;
    Some(Proc { pid, ppid, state })
}

/// The node's live processes under `proc_root` (`/proc`): those whose cgroup
/// differs from `own_cgroup`, zombies left out.
pub fn node_processes_in(proc_root: &Path, own_pid: u32, own_cgroup: &str) -> Vec<Proc> {
    let Ok(entries) = std::fs::read_dir(proc_root) else {
        return Vec::new();
    };
    let mut out: Vec<Proc> = entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| *pid != own_pid)
        .filter_map(|pid| {
            let dir = proc_root.join(pid.to_string());
            let cgroup = std::fs::read_to_string(dir.join("cgroup")).ok()?;
            if cgroup == own_cgroup {
                return None;
            }
            let p = parse_stat(&std::fs::read_to_string(dir.join("stat")).ok()?)?;
            (p.state != 'Z' && p.state != 'X').then_some(p)
        })
        .collect();
    out.sort_by_key(|p| p.pid);
    out
}

/// The node's live processes in this PID namespace.
pub fn node_processes() -> Vec<Proc> {
    let own = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    node_processes_in(Path::new("/proc"), std::process::id(), &own)
}

/// The node's main process: the oldest whose parent is not a node process
/// (its parent is outside the namespace, so its PPid reads 0).
pub fn main_pid(procs: &[Proc]) -> Option<u32> {
    let pids: BTreeSet<u32> = procs.iter().map(|p| p.pid).collect();
    procs
        .iter()
        .filter(|p| !pids.contains(&p.ppid))
        .map(|p| p.pid)
        .min()
}

/// Whether every process is stopped (SIGSTOP or traced).
pub fn all_stopped(procs: &[Proc]) -> bool {
    !procs.is_empty() && procs.iter().all(|p| matches!(p.state, 'T' | 't'))
}

/// Sends `sig` to each process; the ones already gone are skipped.
pub fn signal_all(procs: &[Proc], sig: i32) {
    for p in procs {
        // SAFETY: kill(2) on a pid read from /proc; at worst it is gone (ESRCH).
        unsafe {
            libc::kill(p.pid as i32, sig);
        }
    }
}

/// What the agent remembers of the node across looks: the main process it saw
/// last, and how many times a new one replaced it.
#[derive(Debug, Default)]
pub struct Watch {
    last_main: Option<u32>,
    pub restarts: u64,
}

impl Watch {
    /// Notes the main process seen now; a different one than last seen is a
    /// restart (PIDs of a namespace are not reused soon).
    pub fn see(&mut self, main: Option<u32>) {
        if let Some(pid) = main {
            if self.last_main.is_some_and(|last| last != pid) {
                self.restarts += 1;
            }
            self.last_main = Some(pid);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_lines_with_odd_command_names_parse() {
        let p = parse_stat("42 (etcd) S 0 42 42 0 -1 4194560 ...").unwrap();
        assert_eq!((p.pid, p.state, p.ppid), (42, 'S', 0));
        let p = parse_stat("7 (a) b (c)) T 3 7 7 0").unwrap();
        assert_eq!((p.pid, p.state, p.ppid), (7, 'T', 3));
        assert!(parse_stat("garbage").is_none());
        assert!(parse_stat("").is_none());
    }

    fn fake_proc(dir: &Path, pid: u32, cgroup: &str, stat: &str) {
        let d = dir.join(pid.to_string());
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("cgroup"), cgroup).unwrap();
        std::fs::write(d.join("stat"), stat).unwrap();
    }

    #[test]
    fn node_processes_are_those_outside_the_agents_cgroup() {
        let dir = std::env::temp_dir().join(format!("holder-proc-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let (mine, theirs) = ("0::/holder\n", "0::/node\n");
        fake_proc(&dir, 1, mine, "1 (testnet-node) S 0 1 1");
        fake_proc(&dir, 30, mine, "30 (sh) S 0 30 30"); // a docker exec into the holder
        fake_proc(&dir, 12, theirs, "12 (etcd) S 0 12 12");
        fake_proc(&dir, 15, theirs, "15 (helper) S 12 12 12");
        fake_proc(&dir, 16, theirs, "16 (old) Z 12 12 12");
        std::fs::create_dir_all(dir.join("self")).unwrap();
        let procs = node_processes_in(&dir, 1, mine);
        let pids: Vec<u32> = procs.iter().map(|p| p.pid).collect();
        assert_eq!(pids, [12, 15], "zombies and the holder's own are left out");
        assert_eq!(main_pid(&procs), Some(12));
        assert!(!all_stopped(&procs));
        let stopped: Vec<Proc> = procs
            .iter()
            .map(|p| Proc {
                state: 'T',
                ..p.clone()
            })
            .collect();
        assert!(all_stopped(&stopped));
        assert!(!all_stopped(&[]), "nothing running is not paused");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_new_main_process_counts_as_a_restart() {
        let mut w = Watch::default();
        w.see(Some(12));
        w.see(Some(12));
        w.see(None);
        assert_eq!(w.restarts, 0);
        w.see(Some(40));
        assert_eq!(w.restarts, 1, "killed, then started again");
        w.see(Some(41));
        assert_eq!(w.restarts, 2);
    }
}
