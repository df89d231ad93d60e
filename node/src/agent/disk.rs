//! `PUT /disk`: fills the filesystem of the node's data dir until no byte is
//! free (`{"full": true}`) or frees it again (`{"full": false}`), with one
//! file the agent owns. Only a tmpfs is ever filled (the data dir capped by
//! the testnet, `disk_mib`): a host disk never is, whatever is asked.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;

use super::{error, Agent};
use crate::api::agent::{DiskReport, DiskRequest};
use crate::fsstat::statfs;

/// The file that takes the space, in the data dir.
const FILL: &str = ".testnet-disk-full";
fn report(dir: &Path) -> std::io::Result<DiskReport> {
    let fs = statfs(dir)?;
    let filled = std::fs::metadata(dir.join(FILL))
        .map(|m| m.len())
        .unwrap_or(0);
    Ok(DiskReport {
        path: dir.to_owned(),
        filled_bytes: filled,
        free_bytes: fs.free,
        total_bytes: fs.total,
    })
}

/// Writes zeros into the fill file until the filesystem refuses (ENOSPC),
/// a megabyte at a time, then a page at a time.
fn fill(dir: &Path) -> std::io::Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join(FILL))?;
    for chunk in [1 << 20, 4096, 1] {
        let zeros = vec![0u8; chunk];
        loop {
            match f.write(&zeros) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => break,
                Err(e) => return Err(e),
            }
        }
    }
    Ok(())
}

/// Fills or frees `dir`'s filesystem, refusing anything but a tmpfs.
pub fn set(dir: &Path, full: bool) -> Result<DiskReport, String> {
    let fs = statfs(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    if !fs.is_tmpfs() {
        return Err(format!(
            "{} is not a size-capped tmpfs (filesystem type {:#x}); the agent fills \
             nothing else: give the node a capped data dir (node_options: {{ NODE: {{ disk_mib: 64 }} }})",
            dir.display(),
            fs.kind
        ));
    }
    let done = match full {
        true => fill(dir),
        false => match std::fs::remove_file(dir.join(FILL)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        },
    };
    done.and_then(|()| report(dir))
        .map_err(|e| format!("{}: {e}", dir.display()))
}

fn no_data_dir() -> Response {
    error(
        StatusCode::CONFLICT,
        "this agent knows no data dir of its node (`--data-dir`); its disk cannot be filled",
    )
}

pub(super) async fn get_disk(State(agent): State<Arc<Agent>>) -> Response {
    let Some(dir) = agent.data_dir.clone() else {
        return no_data_dir();
    };
    match report(&dir) {
        Ok(r) => Json(r).into_response(),
        Err(e) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("{}: {e}", dir.display()),
        ),
    }
}

pub(super) async fn put_disk(
    State(agent): State<Arc<Agent>>,
    body: Result<Json<DiskRequest>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let Json(req) = match body {
        Ok(b) => b,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("disk: {e}")),
    };
    let Some(dir) = agent.data_dir.clone() else {
        return no_data_dir();
    };
    match tokio::task::spawn_blocking(move || set(&dir, req.full)).await {
        Ok(Ok(r)) => Json(r).into_response(),
        Ok(Err(e)) => error(StatusCode::CONFLICT, e),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_disk_that_is_not_a_tmpfs_is_never_filled() {
        let dir = tempfile::tempdir().unwrap();
        if statfs(dir.path()).unwrap().is_tmpfs() {
            // Filling the machine's own /tmp is what this refuses to do.
            eprintln!("the temporary dir is a tmpfs here: the refusal cannot be shown");
            return;
        }
        let e = set(dir.path(), true).unwrap_err();
        assert!(e.contains("not a size-capped tmpfs"), "{e}");
        assert!(!dir.path().join(FILL).exists(), "nothing written");
    }
}
