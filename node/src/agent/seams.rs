//! The node's live seams, through the agent: `PUT /clock` (the skew of the
//! node's clock), `PUT /byzantine` (its misbehaviours) and `PUT /storage`
//! (its store's disk faults), each handed to the
//! node's own endpoint over the loopback of their shared network namespace
//! (the node takes them from there only), and read back. A node without those
//! seams (not ours) cannot be faulted this way, and is told so.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::{error, Agent};
use crate::byzantine::Misbehaviour;
use crate::clock::{ClockReport, Skew};
use crate::store::DiskFaults;

/// GETs (`body` None) or PUTs `body` to the node's seam at `url`.
async fn forward<B: Serialize, R: DeserializeOwned>(
    url: &str,
    body: Option<&B>,
) -> Result<R, String> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
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
    error(
        StatusCode::CONFLICT,
        format!(
            "this node has no {what} seam the agent knows (our node's `PUT /{what}`); a \
             foreign image cannot be faulted this way"
        ),
    )
}

/// The node's seam URL for `what` (none for a node without our seams).
fn seam(agent: &Agent, what: &str) -> Option<String> {
    let api = agent.node_api.as_ref()?;
    Some(format!("{}/{what}", api.trim_end_matches('/')))
}

/// What was last set through each seam (`None`: never set).
#[derive(Debug, Default)]
pub(super) struct Kept {
    clock: Mutex<Option<Skew>>,
    byzantine: Mutex<Option<Misbehaviour>>,
    storage: Mutex<Option<DiskFaults>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// How often the keeper compares the node's seams with what was set.
const KEEP_EVERY: Duration = Duration::from_secs(1);

/// Sets again what was set through the seams on a node process that came
/// back without it (killed and started, crashed, OOM-killed): a clock fault
/// or a misbehaviour lasts as long as its window, not as long as a process.
pub(super) async fn keep(agent: Arc<Agent>) {
    if agent.node_api.is_none() {
        return;
    }
    let mut tick = tokio::time::interval(KEEP_EVERY);
    loop {
        tick.tick().await;
        let clock = *lock(&agent.kept.clock);
        if let (Some(skew), Some(url)) = (clock, seam(&agent, "clock")) {
            if let Ok(now) = forward::<Skew, ClockReport>(&url, None).await {
                if now.skew != skew {
                    tracing::warn!(
                        ?skew,
                        "the node came back on real time: its clock skew is set again"
                    );
                    let _ = forward::<Skew, ClockReport>(&url, Some(&skew)).await;
                }
            }
        }
        let byzantine = lock(&agent.kept.byzantine).clone();
        restore(&agent, "byzantine", byzantine).await;
        let storage = *lock(&agent.kept.storage);
        restore(&agent, "storage", storage).await;
    }
}

/// PUTs `kept` through seam `what` when the node shows something else.
async fn restore<T>(agent: &Agent, what: &str, kept: Option<T>)
where
    T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug,
{
    let (Some(kept), Some(url)) = (kept, seam(agent, what)) else {
        return;
    };
    if let Ok(now) = forward::<T, T>(&url, None).await {
        if now != kept {
            tracing::warn!(
                seam = what,
                ?kept,
                "the node came back without it: set again"
            );
            let _ = forward::<T, T>(&url, Some(&kept)).await;
        }
    }
}

/// GET or PUT through the seam `what`; a PUT must read back as set.
async fn through<T>(
    agent: &Agent,
    what: &str,
    body: Option<T>,
    same: fn(&T, &T) -> bool,
) -> Response
where
    T: Serialize + DeserializeOwned + std::fmt::Debug,
{
    let Some(url) = seam(agent, what) else {
        return no_seam(what);
    };
    match (forward::<T, T>(&url, body.as_ref()).await, body) {
        (Ok(back), Some(set)) if !same(&back, &set) => error(
            StatusCode::BAD_GATEWAY,
            format!("the node reads back {back:?}, not {set:?}"),
        ),
        (Ok(back), _) => Json(back).into_response(),
        (Err(e), _) => error(StatusCode::BAD_GATEWAY, e),
    }
}

pub(super) async fn get_clock(State(agent): State<Arc<Agent>>) -> Response {
    let Some(url) = seam(&agent, "clock") else {
        return no_seam("clock");
    };
    match forward::<Skew, ClockReport>(&url, None).await {
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
    let Some(url) = seam(&agent, "clock") else {
        return no_seam("clock");
    };
    match forward::<Skew, ClockReport>(&url, Some(&skew)).await {
        Ok(r) if r.skew == skew => {
            *lock(&agent.kept.clock) = Some(skew);
            Json(r).into_response()
        }
        Ok(r) => error(
            StatusCode::BAD_GATEWAY,
            format!("the node reads back {:?}, not {skew:?}", r.skew),
        ),
        Err(e) => error(StatusCode::BAD_GATEWAY, e),
    }
}

pub(super) async fn get_byzantine(State(agent): State<Arc<Agent>>) -> Response {
    through::<Misbehaviour>(&agent, "byzantine", None, |a, b| a == b).await
}

pub(super) async fn put_byzantine(
    State(agent): State<Arc<Agent>>,
    body: Result<Json<Misbehaviour>, axum::extract::rejection::JsonRejection>,
) -> Response {
    match body {
        Ok(Json(m)) => {
            *lock(&agent.kept.byzantine) = Some(m.clone());
            through(&agent, "byzantine", Some(m), |a, b| a == b).await
        }
        Err(e) => error(StatusCode::BAD_REQUEST, format!("byzantine: {e}")),
    }
}

pub(super) async fn get_storage(State(agent): State<Arc<Agent>>) -> Response {
    through::<DiskFaults>(&agent, "storage", None, |a, b| a == b).await
}

pub(super) async fn put_storage(
    State(agent): State<Arc<Agent>>,
    body: Result<Json<DiskFaults>, axum::extract::rejection::JsonRejection>,
) -> Response {
    match body {
        Ok(Json(f)) => {
            *lock(&agent.kept.storage) = Some(f);
            through(&agent, "storage", Some(f), |a, b| a == b).await
        }
        Err(e) => error(StatusCode::BAD_REQUEST, format!("storage: {e}")),
    }
}
