//! Clock faults for a node image that is not ours (holder mode): the node's
//! container is started with libfaketime preloaded (`LD_PRELOAD`), reading
//! its skew from a spec file in the container; the agent writes that file
//! through `/proc/PID/root` (it shares the node's PID namespace) and the
//! library reads it again every second.
//!
//! Where it cannot work, and is refused with the reason rather than reported
//! as set: a Go binary (Go reads the clock through the vDSO or raw system
//! calls, never libc's functions), a statically linked binary (no dynamic
//! loader reads `LD_PRELOAD`), a musl libc (the library is built for glibc),
//! and any process the library is not loaded in. libfaketime moves the
//! monotonic clock with the wall clock: its option to leave monotonic alone
//! breaks absolute monotonic sleeps in 0.9.10 (Python's `time.sleep` fails
//! with EINVAL), so an offset's undo steps the node's monotonic clock back.

use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::clock::{ClockReport, Skew};

/// The folder in the node's container holding the library and the spec.
pub const DIR: &str = "/.testnet-faketime";
/// The library's file name in [`DIR`].
pub const LIB: &str = "libfaketime.so.1";
/// The spec file's name in [`DIR`]: libfaketime's `FAKETIME_TIMESTAMP_FILE`.
pub const SPEC: &str = "clock";
/// Where our image keeps the library, to be copied into a node's container.
pub const IMAGE_LIB: &str = "/usr/local/lib/testnet/libfaketime.so.1";
/// The spec a node starts with: real time.
pub const REAL_TIME: &str = "+0.000 x1.000000\n";

/// The environment that loads libfaketime into the node's processes.
pub fn env() -> Vec<(String, String)> {
    vec![
        ("LD_PRELOAD".into(), format!("{DIR}/{LIB}")),
        ("FAKETIME_TIMESTAMP_FILE".into(), format!("{DIR}/{SPEC}")),
        // Read the spec again every second (the default is every ten).
        ("FAKETIME_CACHE_DURATION".into(), "1".into()),
    ]
}

/// The spec file's text for `skew` set at real time `set_ms`, for a process
/// whose libfaketime started at `start_ms`. libfaketime applies a rate from
/// the process's start (`start + (now - start) * rate + offset`), and the
/// seam's drift counts from when it was set: the offset takes back what the
/// rate adds for the time before.
/// The rate is always written: libfaketime keeps the last rate it read when a
/// spec has none.
pub fn spec(skew: Skew, start_ms: u64, set_ms: u64) -> String {
    let before = set_ms.saturating_sub(start_ms) as i128 * skew.drift_ppm as i128 / 1_000_000;
    let offset_ms = skew.offset_ms as i128 - before;
    let rate = 1.0 + skew.drift_ppm as f64 / 1_000_000.0;
    format!("{:+.3} x{rate:.6}\n", offset_ms as f64 / 1000.0)
}

/// The node's time at real time `real_ms`, for `skew` set at `set_ms`.
pub fn node_time(skew: Skew, set_ms: u64, real_ms: u64) -> u64 {
    let drifted = real_ms.saturating_sub(set_ms) as i128 * skew.drift_ppm as i128 / 1_000_000;
    (real_ms as i128 + skew.offset_ms as i128 + drifted).max(0) as u64
}

/// What kind of executable a process runs, as far as libfaketime cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Binary {
    /// Dynamically linked through the named loader.
    Dynamic(String),
    Static,
    Go,
    NotElf,
}

/// Sections only Go's linker writes (kept by `strip`).
const GO_SECTIONS: &[&str] = &[".go.buildinfo", ".note.go.buildid", ".gopclntab"];

/// A little-endian ELF file's headers, read from its bytes.
struct Elf<'a> {
    bytes: &'a [u8],
    wide: bool,
}

impl<'a> Elf<'a> {
    fn new(bytes: &'a [u8]) -> Option<Self> {
        // Little-endian ELF only (x86-64, arm64).
        (bytes.len() >= 64 && bytes[..4] == *b"\x7fELF" && bytes[5] == 1).then_some(Elf {
            bytes,
            wide: bytes[4] == 2,
        })
    }

    /// The unsigned number of `len` bytes at `at`.
    fn num(&self, at: usize, len: usize) -> Option<usize> {
        let b = self.bytes.get(at..at.checked_add(len)?)?;
        Some(b.iter().rev().fold(0usize, |n, x| (n << 8) | *x as usize))
    }

    /// A field that is 8 bytes at `wide` in ELF64 and 4 at `narrow` in ELF32.
    fn word(&self, wide: usize, narrow: usize) -> Option<usize> {
        match self.wide {
            true => self.num(wide, 8),
            false => self.num(narrow, 4),
        }
    }

    /// The bytes `offset..offset + len` of the file.
    fn slice(&self, offset: usize, len: usize) -> Option<&'a [u8]> {
        self.bytes.get(offset..offset.checked_add(len)?)
    }

    /// The program loader's path (`PT_INTERP`): `None` when statically linked,
    /// `Some(None)` when the header is broken.
    fn interpreter(&self) -> Option<Option<String>> {
        let (off, size, count) = match self.wide {
            true => (self.num(0x20, 8), self.num(0x36, 2), self.num(0x38, 2)),
            false => (self.num(0x1c, 4), self.num(0x2a, 2), self.num(0x2c, 2)),
        };
        let (Some(off), Some(size), Some(count)) = (off, size, count) else {
            return Some(None);
        };
        let at = (0..count)
            .map(|i| off + i * size)
            .find(|at| self.num(*at, 4) == Some(3))?;
        let path = self
            .word(at + 8, at + 4)
            .zip(self.word(at + 32, at + 16))
            .and_then(|(o, l)| self.slice(o, l))
            .map(|b| String::from_utf8_lossy(b).trim_end_matches('\0').to_owned());
        Some(path)
    }

    /// The names of its sections (none when it has no section table).
    fn section_names(&self) -> Vec<String> {
        let (off, size, count, names) = match self.wide {
            true => (
                self.num(0x28, 8),
                self.num(0x3a, 2),
                self.num(0x3c, 2),
                self.num(0x3e, 2),
            ),
            false => (
                self.num(0x20, 4),
                self.num(0x2e, 2),
                self.num(0x30, 2),
                self.num(0x32, 2),
            ),
        };
        let (Some(off), Some(size), Some(count), Some(names)) = (off, size, count, names) else {
            return Vec::new();
        };
        let header = |i: usize| off + i * size;
        let Some(table) = self.word(header(names) + 0x18, header(names) + 0x10) else {
            return Vec::new();
        };
        (0..count)
            .filter_map(|i| {
                let name = table + self.num(header(i), 4)?;
                let tail = self.bytes.get(name..)?;
                let end = tail.iter().position(|b| *b == 0)?;
                Some(String::from_utf8_lossy(&tail[..end]).into_owned())
            })
            .collect()
    }
}

/// Classifies an executable from its bytes.
pub fn classify(exe: &[u8]) -> Binary {
    let Some(elf) = Elf::new(exe) else {
        return Binary::NotElf;
    };
    if elf
        .section_names()
        .iter()
        .any(|n| GO_SECTIONS.contains(&n.as_str()))
    {
        return Binary::Go;
    }
    match elf.interpreter() {
        None => Binary::Static,
        Some(None) => Binary::NotElf,
        Some(Some(loader)) => Binary::Dynamic(loader),
    }
}

/// Why libfaketime cannot move the clock of the process running `exe` with
/// memory map `maps` (`/proc/PID/maps`), or `None` when it can.
pub fn why_not(exe: &[u8], maps: &str) -> Option<String> {
    match classify(exe) {
        Binary::Go => Some(
            "a Go binary: Go reads the clock through the vDSO or raw system calls, never \
             libc's functions, so libfaketime cannot move it"
                .into(),
        ),
        Binary::Static => {
            Some("statically linked: no dynamic loader reads LD_PRELOAD to load libfaketime".into())
        }
        Binary::NotElf => Some("not an ELF executable the agent can read".into()),
        Binary::Dynamic(loader) if loader.contains("musl") => Some(format!(
            "linked against musl libc ({loader}): libfaketime is built for glibc"
        )),
        Binary::Dynamic(_) if !maps.contains(LIB) => Some(
            "libfaketime is not loaded in it: start the testnet with `node: { faketime: \
             true }`; if it was, the loader refused the library (see `testnet logs`)"
                .into(),
        ),
        Binary::Dynamic(_) => None,
    }
}

/// Why libfaketime cannot move process `pid`'s clock, or `None`.
pub fn examine(pid: u32) -> Option<String> {
    let exe = match std::fs::read(format!("/proc/{pid}/exe")) {
        Ok(b) => b,
        Err(e) => return Some(format!("cannot read /proc/{pid}/exe: {e}")),
    };
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).unwrap_or_default();
    why_not(&exe, &maps).map(|why| {
        let name = std::fs::read_link(format!("/proc/{pid}/exe"))
            .map(|p| p.display().to_string())
            .unwrap_or_else(|_| "?".into());
        format!("the node's process {pid} ({name}) is {why}")
    })
}

/// When process `pid` started, in Unix milliseconds (to 10 ms): its start
/// in clock ticks after boot, from `/proc/PID/stat`.
pub fn start_ms(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &stat[stat.rfind(')')? + 1..];
    let ticks: u64 = after.split_whitespace().nth(19)?.parse().ok()?;
    // SAFETY: plain libc calls with a valid out-pointer.
    let (tck, boot) = unsafe {
        let mut ts: libc::timespec = std::mem::zeroed();
        if libc::clock_gettime(libc::CLOCK_BOOTTIME, &mut ts) != 0 {
            return None;
        }
        (libc::sysconf(libc::_SC_CLK_TCK).max(1) as u64, ts)
    };
    let boot_ms = boot.tv_sec as u64 * 1000 + boot.tv_nsec as u64 / 1_000_000;
    let real = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .ok()?
        .as_millis() as u64;
    Some(real.saturating_sub(boot_ms.saturating_sub(ticks * 1000 / tck)))
}

/// What the agent wrote into the node's spec file, and for which process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Written {
    pub skew: Skew,
    pub set_ms: u64,
    /// The main process the spec was computed for (its start time).
    pub pid: Option<u32>,
}

impl Written {
    pub fn report(&self, real_ms: u64) -> ClockReport {
        ClockReport {
            skew: self.skew,
            now_ms: node_time(self.skew, self.set_ms, real_ms),
            real_ms,
        }
    }
}

/// The spec file as process `pid` sees it.
fn spec_path(pid: u32) -> PathBuf {
    PathBuf::from(format!("/proc/{pid}/root{DIR}/{SPEC}"))
}

/// Writes `skew` (set at `set_ms`) for process `pid` and reads it back.
pub fn write(pid: u32, skew: Skew, set_ms: u64) -> Result<Written, String> {
    let start = start_ms(pid).ok_or_else(|| format!("cannot read /proc/{pid}/stat"))?;
    let text = spec(skew, start, set_ms);
    let path = spec_path(pid);
    let tmp = path.with_extension("new");
    std::fs::write(&tmp, &text)
        .and_then(|_| std::fs::rename(&tmp, &path))
        .map_err(|e| {
            format!(
                "cannot write {}: {e} (was the node started with `node: {{ faketime: true }}`?)",
                path.display()
            )
        })?;
    match std::fs::read_to_string(&path) {
        Ok(back) if back == text => Ok(Written {
            skew,
            set_ms,
            pid: Some(pid),
        }),
        Ok(back) => Err(format!(
            "{} reads back {back:?}, not {text:?}",
            path.display()
        )),
        Err(e) => Err(format!("cannot read back {}: {e}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_take_back_the_rate_before_the_skew_was_set() {
        let off = Skew {
            offset_ms: 30_000,
            drift_ppm: 0,
        };
        assert_eq!(spec(off, 0, 5_000), "+30.000 x1.000000\n");
        let back = Skew {
            offset_ms: -2_250,
            drift_ppm: 0,
        };
        assert_eq!(spec(back, 0, 0), "-2.250 x1.000000\n");
        assert_eq!(
            spec(Skew::default(), 1, 2),
            "+0.000 x1.000000\n",
            "real time undoes a rate set before"
        );
        // 1,000 s after the process started, at 500 ppm: libfaketime's rate
        // would add 0.5 s for the time before, which the offset takes back.
        let drift = Skew {
            offset_ms: 30_000,
            drift_ppm: 500,
        };
        assert_eq!(spec(drift, 1_000_000, 2_000_000), "+29.500 x1.000500\n");
        let slow = Skew {
            offset_ms: 0,
            drift_ppm: -1000,
        };
        assert_eq!(spec(slow, 0, 10_000), "+0.010 x0.999000\n");
        // What the spec gives (libfaketime's formula) is the seam's time.
        let (start, set, now) = (1_000_000u64, 2_000_000u64, 2_600_000u64);
        let fake = start as f64 + (now - start) as f64 * 1.0005 + 29_500.0;
        assert_eq!(fake as u64, node_time(drift, set, now));
    }

    /// A little-endian ELF64 file with `phdrs` (type, offset, size), `tail`
    /// bytes after them, and a section table naming `sections`.
    fn elf(phdrs: &[(u32, u64, u64)], tail: &[u8], sections: &[&str]) -> Vec<u8> {
        let mut b = vec![0u8; 64];
        b[..4].copy_from_slice(b"\x7fELF");
        b[4] = 2;
        b[5] = 1;
        b[0x20..0x28].copy_from_slice(&64u64.to_le_bytes());
        b[0x36..0x38].copy_from_slice(&56u16.to_le_bytes());
        b[0x38..0x3a].copy_from_slice(&(phdrs.len() as u16).to_le_bytes());
        for (kind, offset, size) in phdrs {
            let mut p = vec![0u8; 56];
            p[..4].copy_from_slice(&kind.to_le_bytes());
            p[8..16].copy_from_slice(&offset.to_le_bytes());
            p[32..40].copy_from_slice(&size.to_le_bytes());
            b.extend(p);
        }
        b.extend_from_slice(tail);
        if sections.is_empty() {
            return b;
        }
        // The names' table, then one header per name and one for the table.
        let strtab = b.len();
        let mut at = Vec::new();
        for name in sections.iter().chain([&".shstrtab"]) {
            at.push(b.len() - strtab);
            b.extend_from_slice(name.as_bytes());
            b.push(0);
        }
        let shoff = b.len() as u64;
        for name_at in &at {
            let mut h = vec![0u8; 64];
            h[..4].copy_from_slice(&(*name_at as u32).to_le_bytes());
            h[0x18..0x20].copy_from_slice(&(strtab as u64).to_le_bytes());
            b.extend(h);
        }
        b[0x28..0x30].copy_from_slice(&shoff.to_le_bytes());
        b[0x3a..0x3c].copy_from_slice(&64u16.to_le_bytes());
        b[0x3c..0x3e].copy_from_slice(&(at.len() as u16).to_le_bytes());
        b[0x3e..0x40].copy_from_slice(&(sections.len() as u16).to_le_bytes());
        b
    }

    #[test]
    fn binaries_are_told_apart() {
        let loader = b"/lib64/ld-linux-x86-64.so.2\0";
        let at = 64 + 2 * 56;
        let dynamic = elf(
            &[(1, 0, 0), (3, at, loader.len() as u64)],
            loader,
            &[".text"],
        );
        assert_eq!(
            classify(&dynamic),
            Binary::Dynamic("/lib64/ld-linux-x86-64.so.2".into())
        );
        assert_eq!(classify(&elf(&[(1, 0, 0)], b"", &[])), Binary::Static);
        let phdrs = [(3, at, loader.len() as u64)];
        let go = elf(&phdrs, loader, &[".text", ".go.buildinfo"]);
        assert_eq!(classify(&go), Binary::Go, "a Go binary linked with cgo");
        let musl = b"/lib/ld-musl-x86_64.so.1\0";
        let musl = elf(&[(3, 64 + 56, musl.len() as u64)], musl, &[]);
        assert!(why_not(&musl, "").unwrap().contains("musl"));
        assert_eq!(classify(b"#!/bin/sh\n"), Binary::NotElf);
        let broken = elf(&[(3, 1 << 40, 8)], b"", &[]);
        assert_eq!(classify(&broken), Binary::NotElf, "an interp past the end");
        // The verdicts, each with its reason.
        let loaded = "7f00-7f10 r-xp 0 0:0 0 /.testnet-faketime/libfaketime.so.1\n";
        assert_eq!(why_not(&dynamic, loaded), None);
        assert!(why_not(&dynamic, "").unwrap().contains("not loaded"));
        assert!(why_not(&go, loaded).unwrap().contains("Go binary"));
        assert!(why_not(&elf(&[], b"", &[]), loaded)
            .unwrap()
            .contains("statically linked"));
    }

    #[test]
    fn this_test_binary_is_dynamically_linked_and_started_just_now() {
        let exe = std::fs::read("/proc/self/exe").unwrap();
        assert!(
            matches!(classify(&exe), Binary::Dynamic(_)),
            "{:?}",
            classify(&exe)
        );
        let me = std::process::id();
        let started = start_ms(me).unwrap();
        let now = crate::clock::real_ms();
        assert!(
            started <= now + 20 && now - started < 600_000,
            "{started} vs {now}"
        );
    }
}
