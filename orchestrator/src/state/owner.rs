//! Who owns a testnet, and who holds it now.
//!
//! - The **owner** (`owner.json` in the state dir) is the command that made
//!   the testnet: `testnet run` owns its testnet until it ends; `up` (and
//!   `run --keep`) leave it detached, owned by the user. A testnet whose owning
//!   process is gone (SIGKILL, a crashed CI runner) is *stale*: every command on
//!   its name says so, `up`/`run` of the name remove it first, `down --stale`
//!   removes all of them.
//! - The **lock** (`.locks/NAME` beside the state dirs, never deleted so its
//!   inode is stable) is held by a command that changes the testnet for as long
//!   as it runs; a second one on the same name refuses and names the holder. The
//!   kernel releases it when the holder dies, however it dies.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::path::PathBuf;

use super::StateDir;
use crate::process::{hostname, running, start_ticks};

/// A process on a host that owns or holds a testnet.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Owner {
    /// The command, e.g. `run`, `up`.
    pub command: String,
    pub pid: u32,
    /// The process's start time in clock ticks after boot (`/proc/PID/stat`
    /// field 22): a recycled PID has another.
    pub started: u64,
    pub host: String,
    /// Unix seconds when it took the testnet.
    pub since: u64,
    /// The testnet outlives the command (`up`, `run --keep`): it is the user's.
    pub detached: bool,
}

impl Owner {
    /// This process, running `command`.
    pub fn me(command: &str, detached: bool) -> Owner {
        let pid = std::process::id();
        Owner {
            command: command.to_owned(),
            pid,
            started: start_ticks(pid).unwrap_or(0),
            host: hostname(),
            since: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
            detached,
        }
    }

    /// Whether the process still runs: `None` when it ran on another host.
    pub fn alive(&self) -> Option<bool> {
        if self.host != hostname() {
            return None;
        }
        Some(running(self.pid, self.started))
    }

    /// `` `testnet run` (pid 123 on host, since 2026-12-02T07:40:00Z) ``.
    pub fn describe(&self) -> String {
        let since = humantime::format_rfc3339_seconds(
            std::time::UNIX_EPOCH + std::time::Duration::from_secs(self.since),
        );
        format!(
            "`testnet {}` (pid {} on {}, since {since})",
            self.command, self.pid, self.host
        )
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("testnet {name:?} is in use by {holder}; wait for it to finish, stop it (`kill {pid}`), or pick another --name")]
    Held {
        name: String,
        holder: String,
        pid: u32,
    },
    #[error("cannot lock testnet {name:?} ({path}): {source}")]
    Io {
        name: String,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// A held lock on a testnet name; released when dropped (or when the process dies).
#[derive(Debug)]
pub struct Lock {
    _file: File,
}

impl StateDir {
    fn owner_path(&self) -> PathBuf {
        self.root.join("owner.json")
    }

    fn lock_path(&self) -> PathBuf {
        let base = self.root.parent().unwrap_or(&self.root);
        base.join(".locks").join(self.name())
    }

    /// The owner recorded when the testnet came up (none for testnets of
    /// older versions: they count as detached).
    pub fn owner(&self) -> Option<Owner> {
        let bytes = std::fs::read(self.owner_path()).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    pub fn save_owner(&self, owner: &Owner) -> Result<(), super::StateError> {
        let bytes = serde_json::to_vec_pretty(owner).expect("owner serializes");
        self.write(&self.owner_path(), &bytes)
    }

    /// The owner, when it is a process of this host that is gone.
    pub fn stale_owner(&self) -> Option<Owner> {
        self.owner()
            .filter(|o| !o.detached && o.alive() == Some(false))
    }

    /// Takes the testnet's lock for `command`, or names who holds it.
    pub fn lock(&self, command: &str) -> Result<Lock, LockError> {
        let path = self.lock_path();
        let io = |source| LockError::Io {
            name: self.name(),
            path: path.clone(),
            source,
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io)?;
        match try_lock(&file) {
            Ok(true) => {}
            Ok(false) => {
                let mut text = String::new();
                let _ = file.read_to_string(&mut text);
                let holder: Option<Owner> = serde_json::from_str(&text).ok();
                return Err(LockError::Held {
                    name: self.name(),
                    holder: holder
                        .as_ref()
                        .map(Owner::describe)
                        .unwrap_or_else(|| "another testnet command".into()),
                    pid: holder.map(|h| h.pid).unwrap_or(0),
                });
            }
            Err(e) => return Err(io(e)),
        }
        let me = serde_json::to_vec(&Owner::me(command, false)).expect("owner serializes");
        file.set_len(0)
            .and_then(|()| file.rewind())
            .and_then(|()| file.write_all(&me))
            .map_err(io)?;
        Ok(Lock { _file: file })
    }

    /// Whether some command holds the lock now.
    pub fn locked(&self) -> bool {
        OpenOptions::new()
            .read(true)
            .open(self.lock_path())
            .is_ok_and(|f| matches!(try_lock(&f), Ok(false)))
    }
}

/// `flock(LOCK_EX | LOCK_NB)`: `Ok(false)` when another open file holds it.
fn try_lock(file: &File) -> std::io::Result<bool> {
    use std::os::fd::AsRawFd;
    // SAFETY: flock(2) on a descriptor this `File` owns for the whole call.
    match unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } {
        0 => Ok(true),
        _ => {
            let e = std::io::Error::last_os_error();
            match e.raw_os_error() {
                Some(libc::EWOULDBLOCK) => Ok(false),
                _ => Err(e),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(name: &str) -> (tempfile::TempDir, StateDir) {
        let base = tempfile::tempdir().unwrap();
        let sd = StateDir::at(base.path(), name);
        (base, sd)
    }

    #[test]
    fn a_second_lock_on_the_name_refuses_and_names_the_holder() {
        let (_base, sd) = dir("alpha");
        let held = sd.lock("run").unwrap();
        assert!(sd.locked());
        let err = sd.lock("up").unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("\"alpha\" is in use by `testnet run`"),
            "{text}"
        );
        assert!(
            text.contains(&format!("pid {}", std::process::id())),
            "{text}"
        );
        drop(held);
        assert!(!sd.locked());
        sd.lock("up").expect("free again after the holder let go");
    }

    #[test]
    fn different_names_lock_side_by_side() {
        let base = tempfile::tempdir().unwrap();
        let a = StateDir::at(base.path(), "a").lock("run").unwrap();
        let b = StateDir::at(base.path(), "b").lock("run").unwrap();
        drop((a, b));
    }

    #[test]
    fn the_lock_survives_removing_the_state_dir() {
        let (_base, sd) = dir("beta");
        let held = sd.lock("down").unwrap();
        sd.remove();
        assert!(sd.lock("up").is_err(), "still held after the dir went");
        drop(held);
    }

    #[test]
    fn an_owner_that_is_gone_makes_the_testnet_stale() {
        let (_base, sd) = dir("gamma");
        assert_eq!(sd.stale_owner(), None, "no owner: never stale");
        let me = Owner::me("run", false);
        sd.save_owner(&me).unwrap();
        assert_eq!(sd.owner(), Some(me.clone()));
        assert_eq!(sd.stale_owner(), None, "this process is alive");
        // A start time that differs: the PID was recycled.
        let recycled = Owner {
            started: me.started + 1,
            ..me.clone()
        };
        sd.save_owner(&recycled).unwrap();
        assert_eq!(sd.stale_owner(), Some(recycled.clone()));
        // Detached testnets (up, run --keep) are never stale.
        sd.save_owner(&Owner {
            detached: true,
            ..recycled
        })
        .unwrap();
        assert_eq!(sd.stale_owner(), None);
        // An owner on another host cannot be judged.
        sd.save_owner(&Owner {
            host: "elsewhere".into(),
            pid: u32::MAX,
            ..me
        })
        .unwrap();
        assert_eq!(sd.stale_owner(), None);
    }

    #[test]
    fn a_dead_process_is_not_alive() {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        let o = Owner {
            pid,
            ..Owner::me("run", false)
        };
        assert_eq!(o.alive(), Some(false));
        assert!(o
            .describe()
            .starts_with(&format!("`testnet run` (pid {pid} on ")));
    }
}
