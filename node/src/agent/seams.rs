//! The node's live seams, through the agent: `PUT /clock` (the skew of the
//! node's clock), `PUT /byzantine` (its misbehaviours) and `PUT /storage`
//! (its store's disk faults), each handed to the node's own endpoint over the
//! loopback of their shared network namespace (the node takes them from
//! there only), and read back. What the node took is kept (see `keeper`). A
//! node without those seams (not ours) cannot be faulted this way, and is
//! told so.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::sync::Arc;
use std::time::Duration;

use super::{error, faketime, holder, Agent};
use crate::byzantine::Misbehaviour;
use crate::clock::{ClockReport, Skew};
use crate::store::DiskFaults;

/// What was last set through each seam and read back (`None`: never set).
#[derive(Debug, Default)]
pub(super) struct KeptState {
    pub clock: Option<Skew>,
    pub byzantine: Option<Misbehaviour>,
    pub storage: Option<DiskFaults>,
    /// A foreign node's libfaketime spec, as last written.
    pub faketime: Option<super::faketime::Written>,
}

pub(super) type Kept = tokio::sync::Mutex<KeptState>;

/// How long a seam call through the API may take.
const CALL: Duration = Duration::from_secs(5);

/// GETs (`body` None) or PUTs `body` to the node's seam at `url`.
pub(super) async fn forward<B: Serialize, R: DeserializeOwned>(
    url: &str,
    body: Option<&B>,
    timeout: Duration,
) -> Result<R, String> {
    let http = reqwest::Client::builder()
        .timeout(timeout)
        .build()
        .map_err(|e| e.to_string())?;
    let request = match body {
        Some(b) => http.put(url).json(b),
        None => http.get(url),
    };
    let res = request
        .send()
        .await
        .map_err(|e| format!("the node's seam at {url} does not answer: {e}"))?;
    if !res.status().is_success() {
        let code = res.status();
        return Err(format!(
            "{url}: {code} {}",
            res.text().await.unwrap_or_default()
        ));
    }
    res.json().await.map_err(|e| format!("{url}: {e}"))
}

fn no_seam(what: &str) -> Response {
    let fix = match what {
        "clock" => {
            "; a foreign image's clock moves through libfaketime: set `node: { faketime: \
             true }` in the testnet file and bring it up again (dynamically linked glibc \
             binaries only: not Go, static or musl ones)"
        }
        _ => "; a foreign image cannot be faulted this way",
    };
    error(
        StatusCode::CONFLICT,
        format!("this node has no {what} seam the agent knows (our node's `PUT /{what}`){fix}"),
    )
}

/// The node's seam URL for `what` (none for a node without our seams).
pub(super) fn seam(agent: &Agent, what: &str) -> Option<String> {
    let api = agent.node_api.as_ref()?;
    Some(format!("{}/{what}", api.trim_end_matches('/')))
}

/// GETs seam `what`.
async fn read<T: Serialize + DeserializeOwned>(agent: &Agent, what: &str) -> Response {
    let Some(url) = seam(agent, what) else {
        return no_seam(what);
    };
    match forward::<T, T>(&url, None, CALL).await {
        Ok(back) => Json(back).into_response(),
        Err(e) => error(StatusCode::BAD_GATEWAY, e),
    }
}

/// PUTs `set` through seam `what`; when the node reads it back as set, it is
/// kept (`keep`), all under the keeper's lock so the keeper never puts back
/// an older value meanwhile.
async fn write<T>(agent: &Agent, what: &str, set: T, keep: fn(&mut KeptState, T)) -> Response
where
    T: Serialize + DeserializeOwned + PartialEq + Clone + std::fmt::Debug,
{
    let Some(url) = seam(agent, what) else {
        return no_seam(what);
    };
    let mut kept = agent.kept.lock().await;
    match forward::<T, T>(&url, Some(&set), CALL).await {
        Ok(back) if back != set => error(
            StatusCode::BAD_GATEWAY,
            format!("the node reads back {back:?}, not {set:?}"),
        ),
        Ok(back) => {
            keep(&mut kept, set);
            Json(back).into_response()
        }
        Err(e) => error(StatusCode::BAD_GATEWAY, e),
    }
}

pub(super) async fn get_clock(State(agent): State<Arc<Agent>>) -> Response {
    if agent.node_api.is_none() && agent.faketime {
        return faketime_read(&agent).await;
    }
    let Some(url) = seam(&agent, "clock") else {
        return no_seam("clock");
    };
    match forward::<Skew, ClockReport>(&url, None, CALL).await {
        Ok(r) => Json(r).into_response(),
        Err(e) => error(StatusCode::BAD_GATEWAY, e),
    }
}

pub(super) async fn put_clock(
    State(agent): State<Arc<Agent>>,
    body: Result<Json<Skew>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let Json(skew) = match body {
        Ok(b) => b,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("clock: {e}")),
    };
    if agent.node_api.is_none() && agent.faketime {
        return faketime_write(&agent, skew).await;
    }
    let Some(url) = seam(&agent, "clock") else {
        return no_seam("clock");
    };
    let mut kept = agent.kept.lock().await;
    match forward::<Skew, ClockReport>(&url, Some(&skew), CALL).await {
        Ok(r) if r.skew == skew => {
            kept.clock = Some(skew);
            Json(r).into_response()
        }
        Ok(r) => error(
            StatusCode::BAD_GATEWAY,
            format!("the node reads back {:?}, not {skew:?}", r.skew),
        ),
        Err(e) => error(StatusCode::BAD_GATEWAY, e),
    }
}

/// A foreign node's clock through libfaketime ([`faketime`]): refused for
/// a process it cannot reach; real time again is kept for a node with no
/// process running (the keeper writes it when one starts).
async fn faketime_write(agent: &Agent, skew: Skew) -> Response {
    let mut kept = agent.kept.lock().await;
    let procs = holder::node_processes();
    let set_ms = crate::clock::real_ms();
    let Some(main) = holder::main_pid(&procs) else {
        if skew == Skew::default() {
            let w = faketime::Written {
                skew,
                set_ms,
                pid: None,
            };
            kept.faketime = Some(w);
            return Json(w.report(set_ms)).into_response();
        }
        return error(
            StatusCode::CONFLICT,
            "the node has no running process to skew: start it first",
        );
    };
    // Real time again needs no proof the library can move the clock.
    let pids: Vec<u32> = match skew == Skew::default() {
        true => Vec::new(),
        false => procs.iter().map(|p| p.pid).collect(),
    };
    let why = tokio::task::spawn_blocking(move || pids.into_iter().find_map(faketime::examine))
        .await
        .unwrap_or_else(|e| Some(format!("examining the node's processes failed: {e}")));
    if let Some(why) = why {
        return error(
            StatusCode::CONFLICT,
            format!("libfaketime cannot move this node's clock: {why}"),
        );
    }
    match faketime::write(main, skew, set_ms) {
        Ok(w) => {
            kept.faketime = Some(w);
            Json(w.report(crate::clock::real_ms())).into_response()
        }
        Err(e) => error(StatusCode::BAD_GATEWAY, e),
    }
}

/// What the agent last wrote in the node's spec file (the keeper writes it
/// again for a process that started since).
async fn faketime_read(agent: &Agent) -> Response {
    let kept = agent.kept.lock().await;
    let w = kept.faketime.unwrap_or(faketime::Written {
        skew: Skew::default(),
        set_ms: 0,
        pid: None,
    });
    Json(w.report(crate::clock::real_ms())).into_response()
}

pub(super) async fn get_byzantine(State(agent): State<Arc<Agent>>) -> Response {
    read::<Misbehaviour>(&agent, "byzantine").await
}

pub(super) async fn put_byzantine(
    State(agent): State<Arc<Agent>>,
    body: Result<Json<Misbehaviour>, axum::extract::rejection::JsonRejection>,
) -> Response {
    match body {
        Ok(Json(m)) => write(&agent, "byzantine", m, |k, m| k.byzantine = Some(m)).await,
        Err(e) => error(StatusCode::BAD_REQUEST, format!("byzantine: {e}")),
    }
}

pub(super) async fn get_storage(State(agent): State<Arc<Agent>>) -> Response {
    read::<DiskFaults>(&agent, "storage").await
}

pub(super) async fn put_storage(
    State(agent): State<Arc<Agent>>,
    body: Result<Json<DiskFaults>, axum::extract::rejection::JsonRejection>,
) -> Response {
    match body {
        Ok(Json(f)) => write(&agent, "storage", f, |k, f| k.storage = Some(f)).await,
        Err(e) => error(StatusCode::BAD_REQUEST, format!("storage: {e}")),
    }
}
