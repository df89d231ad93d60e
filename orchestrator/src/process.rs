//! This host's processes as the orchestrator tells them apart: a pid with its
//! start time (a recycled pid has another), and marks of a process for the
//! names of scratch resources, so whoever finds one after a kill can tell
//! whether its maker is gone. A leaf: it imports nothing of the crate.

/// A mark of this process for the names of scratch resources it removes
/// itself (`3f9a12c0-4242-987654`: this host's hash, the pid, its start time),
/// so that whoever finds one after a kill can tell whether its maker is gone.
pub fn process_mark() -> String {
    let pid = std::process::id();
    format!(
        "{}-{pid}-{}",
        host_hash(&hostname()),
        start_ticks(pid).unwrap_or(0)
    )
}

/// Whether `mark` (a [`process_mark`]) names a process of this host that is
/// gone. A mark of another host, or one that does not parse, is not.
pub fn mark_is_gone(mark: &str) -> bool {
    let mut parts = mark.splitn(3, '-');
    let (Some(host), Some(pid), Some(started)) = (parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    let (Ok(pid), Ok(started)) = (pid.parse::<u32>(), started.parse::<u64>()) else {
        return false;
    };
    host == host_hash(&hostname()) && !running(pid, started)
}

/// Whether process `pid`, started at `started` clock ticks after boot (0:
/// unknown), still runs on this host.
pub fn running(pid: u32, started: u64) -> bool {
    start_ticks(pid).is_some_and(|t| started == 0 || t == started)
}

/// Eight hex digits of the host name's SHA-256: stable across versions and
/// always valid in a container's name.
fn host_hash(host: &str) -> String {
    use sha2::Digest;
    hex::encode(&sha2::Sha256::digest(host.as_bytes())[..4])
}

/// A process's start time in clock ticks after boot.
pub fn start_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold spaces.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "localhost".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_process_mark_is_gone_only_when_its_process_on_this_host_is() {
        let mine = process_mark();
        assert!(!mark_is_gone(&mine), "{mine}");
        let (host, rest) = mine.split_once('-').unwrap();
        let started = rest.split_once('-').unwrap().1;
        // Above the kernel's largest pid_max: no such process.
        assert!(mark_is_gone(&format!("{host}-4194305-{started}")));
        // Our pid, but another start time: the pid was recycled.
        let pid = std::process::id();
        assert!(mark_is_gone(&format!("{host}-{pid}-1")));
        // Another host's process, or no mark at all: not ours to judge.
        assert!(!mark_is_gone(&format!("00000000-4194305-{started}")));
        for junk in ["", "abc", "x-y-z", "3f9a12c0-12"] {
            assert!(!mark_is_gone(junk), "{junk}");
        }
    }
}
