//! `PUT /clock` on the agent: the skew of the node's clock, handed to the
//! node's own `PUT /clock` over the loopback of their shared network
//! namespace (the node takes it from there only). A node without that seam
//! (not ours) cannot have its clock skewed this way, and is told so.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use std::sync::Arc;
use std::time::Duration;

use super::{error, Agent};
use crate::clock::{ClockReport, Skew};

async fn forward(url: &str, skew: Option<Skew>) -> Result<ClockReport, String> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .map_err(|e| e.to_string())?;
    let request = match skew {
        Some(s) => http.put(url).json(&s),
        None => http.get(url),
    };
    let res = request
        .send()
        .await
        .map_err(|e| format!("the node's clock at {url} does not answer: {e}"))?;
    if !res.status().is_success() {
        let code = res.status();
        return Err(format!(
            "{url}: {code} {}",
            res.text().await.unwrap_or_default()
        ));
    }
    res.json().await.map_err(|e| format!("{url}: {e}"))
}

fn no_seam() -> Response {
    error(
        StatusCode::CONFLICT,
        "this node has no clock seam the agent knows (our node's `PUT /clock`); a foreign \
         image's clock cannot be skewed yet",
    )
}

pub(super) async fn get_clock(State(agent): State<Arc<Agent>>) -> Response {
    match &agent.clock_url {
        None => no_seam(),
        Some(url) => match forward(url, None).await {
            Ok(r) => Json(r).into_response(),
            Err(e) => error(StatusCode::BAD_GATEWAY, e),
        },
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
    match &agent.clock_url {
        None => no_seam(),
        Some(url) => match forward(url, Some(skew)).await {
            Ok(r) if r.skew == skew => Json(r).into_response(),
            Ok(r) => error(
                StatusCode::BAD_GATEWAY,
                format!("the node reads back {:?}, not {skew:?}", r.skew),
            ),
            Err(e) => error(StatusCode::BAD_GATEWAY, e),
        },
    }
}
