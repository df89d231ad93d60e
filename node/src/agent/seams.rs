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
use std::sync::Arc;
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
        Ok(r) if r.skew == skew => Json(r).into_response(),
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
        Ok(Json(m)) => through(&agent, "byzantine", Some(m), |a, b| a == b).await,
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
        Ok(Json(f)) => through(&agent, "storage", Some(f), |a, b| a == b).await,
        Err(e) => error(StatusCode::BAD_REQUEST, format!("storage: {e}")),
    }
}
