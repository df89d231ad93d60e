//! Processes as the orchestrator tells them apart: a pid with its
//! start time (a recycled pid has another), and marks of a process for the
//! names of scratch resources, so whoever finds one after a kill can tell
//! whether its maker is gone. A leaf: it imports nothing of the crate.

/// A mark of this process for the names of scratch resources it removes
/// itself (`3f9a12c0-4242-987654`: a hash of this boot and PID namespace, the
/// pid, its start time), so that whoever finds one after a kill can tell
/// whether its maker is gone.
pub fn process_mark() -> String {
    let pid = std::process::id();
    format!("{}-{pid}-{}", pid_space(), start_ticks(pid).unwrap_or(0))
}

/// Whether `mark` (a [`process_mark`]) names a process that is gone. Only a
/// mark of this boot and PID namespace is judged: the pid means the same
/// process here (not on another machine sharing the daemon, nor in a
/// container with a PID namespace of its own, whatever the host names say).
/// One that does not parse is not gone.
pub fn mark_is_gone(mark: &str) -> bool {
    let mut parts = mark.splitn(3, '-');
    let (Some(space), Some(pid), Some(started)) = (parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    let (Ok(pid), Ok(started)) = (pid.parse::<u32>(), started.parse::<u64>()) else {
        return false;
    };
    space == pid_space() && !running(pid, started)
}

/// Whether process `pid`, started at `started` clock ticks after boot (0:
/// unknown), still runs in this PID namespace. A process whose `/proc` entry
/// is hidden (`hidepid`) but that a signal would reach counts as running.
pub fn running(pid: u32, started: u64) -> bool {
    let Ok(signed) = i32::try_from(pid) else {
        return false;
    };
    match start_ticks(pid) {
        Some(t) => started == 0 || t == started,
        None if signed > 0 => {
            // SAFETY: signal 0 sends nothing; it only asks whether `pid` exists.
            let exists = unsafe { libc::kill(signed, 0) } == 0;
            exists || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
        }
        None => false,
    }
}

/// Eight hex digits of SHA-256 over this boot's id and this PID namespace:
/// pids mean the same process only where both are equal.
fn pid_space() -> String {
    use sha2::Digest;
    let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap_or_default();
    let ns = std::fs::read_link("/proc/self/ns/pid").unwrap_or_default();
    let mut h = sha2::Sha256::new();
    h.update(boot.trim().as_bytes());
    h.update(ns.as_os_str().as_encoded_bytes());
    hex::encode(&h.finalize()[..4])
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
    fn a_process_mark_is_gone_only_when_its_process_in_this_pid_space_is() {
        let mine = process_mark();
        assert!(!mark_is_gone(&mine), "{mine}");
        let (space, rest) = mine.split_once('-').unwrap();
        let started = rest.split_once('-').unwrap().1;
        // Above the kernel's largest pid_max: no such process.
        assert!(mark_is_gone(&format!("{space}-4194305-{started}")));
        // Our pid, but another start time: the pid was recycled.
        let pid = std::process::id();
        assert!(mark_is_gone(&format!("{space}-{pid}-1")));
        // Another boot's or PID namespace's process, or no mark at all: not
        // ours to judge.
        assert!(!mark_is_gone(&format!("00000000-4194305-{started}")));
        for junk in ["", "abc", "x-y-z", "3f9a12c0-12"] {
            assert!(!mark_is_gone(junk), "{junk}");
        }
    }

    #[test]
    fn running_knows_this_process_and_no_pid_beyond_the_kernels() {
        let me = std::process::id();
        assert!(running(me, start_ticks(me).unwrap()));
        assert!(
            running(me, 0),
            "an unknown start time is not a recycled pid"
        );
        assert!(!running(4194305, 0));
        assert!(!running(u32::MAX, 0), "not a pid, nor a process group");
        assert!(!running(0, 0), "not our process group");
    }
}
