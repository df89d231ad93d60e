//! What statfs(2) says of a path's filesystem (the disk agent's fill, the
//! orchestrator's choice of a scratch dir for mmdebstrap).

use std::path::Path;

/// statfs(2)'s f_type of a tmpfs.
pub const TMPFS_MAGIC: i64 = 0x0102_1994;

/// A filesystem's kind and size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FsStat {
    /// f_type (`TMPFS_MAGIC` for a tmpfs).
    pub kind: i64,
    /// Bytes free for unprivileged use.
    pub free: u64,
    pub total: u64,
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
    let block = s.f_bsize as u64;
    Ok(FsStat {
        kind: s.f_type as i64,
        free: s.f_bavail as u64 * block,
        total: s.f_blocks as u64 * block,
    })
}
