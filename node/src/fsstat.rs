//! What statfs(2) says of a path's filesystem (the disk agent's fill, the
//! orchestrator's choice of a scratch dir for mmdebstrap).

use std::path::Path;

/// statfs(2)'s f_type of a tmpfs.
pub const TMPFS_MAGIC: i64 = 0x0102_1994;
/// statvfs(3)'s f_flag bit of a filesystem mounted `noexec` (Linux).
const ST_NOEXEC: u64 = 8;

/// A filesystem's kind and size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FsStat {
    /// f_type (`TMPFS_MAGIC` for a tmpfs).
    pub kind: i64,
    /// Bytes free for unprivileged use.
    pub free: u64,
    pub total: u64,
    /// Mounted `noexec`: no program runs from it.
    pub noexec: bool,
}

impl FsStat {
    pub fn is_tmpfs(&self) -> bool {
        self.kind == TMPFS_MAGIC
    }
}

/// statfs(2) of `path`'s filesystem.
pub fn statfs(path: &Path) -> std::io::Result<FsStat> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| std::io::Error::other("a path with a NUL byte"))?;
    let mut s: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a valid C string and `s` a statfs buffer we own.
    if unsafe { libc::statfs(c.as_ptr(), &mut s) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let mut v: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: as above, with a statvfs buffer we own (its flags: statfs's
    // are not in every libc's struct).
    if unsafe { libc::statvfs(c.as_ptr(), &mut v) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let block = s.f_bsize as u64;
    Ok(FsStat {
        kind: s.f_type as i64,
        free: s.f_bavail as u64 * block,
        total: s.f_blocks as u64 * block,
        noexec: v.f_flag as u64 & ST_NOEXEC != 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each mount point's `noexec` as /proc/mounts lists it.
    fn listed_noexec(point: &str) -> Option<bool> {
        let mounts = std::fs::read_to_string("/proc/mounts").ok()?;
        let line = mounts
            .lines()
            .rfind(|l| l.split(' ').nth(1) == Some(point))?;
        let options = line.split(' ').nth(3)?;
        Some(options.split(',').any(|o| o == "noexec"))
    }

    #[test]
    fn noexec_is_read_as_the_mount_table_says() {
        for point in ["/proc", "/dev/shm", "/"] {
            if let (Some(listed), Ok(fs)) = (listed_noexec(point), statfs(Path::new(point))) {
                assert_eq!(fs.noexec, listed, "{point}");
            }
        }
        // A tmpfs mounted noexec, where this may mount (root, as in CI).
        let dir = tempfile::tempdir().unwrap();
        let mount = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", "noexec,size=1m", "tmpfs"])
            .arg(dir.path())
            .output();
        if !mount.is_ok_and(|o| o.status.success()) {
            eprintln!("cannot mount a tmpfs here (not root): the noexec case is not shown");
            return;
        }
        let fs = statfs(dir.path());
        let _ = std::process::Command::new("umount")
            .arg(dir.path())
            .status();
        let fs = fs.unwrap();
        assert!(fs.noexec && fs.is_tmpfs() && fs.total == 1 << 20, "{fs:?}");
    }
}
