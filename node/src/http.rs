//! The node's HTTP API (axum): `/metrics`, `/health`, `/status`, `/peers`,
//! `POST /tx`, `POST /txs` (many at once), `GET /tx/{id}`, `GET /finalized`.
//!
//! Errors are JSON (`{"error": ...}`) with a status code; request bodies are
//! capped at [`MAX_BODY`].

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{header, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};

use crate::api::{
    ApiError, FinalizedEntry, FinalizedPage, Health, PeerInfo, Refused, Status, Submitted,
    TxAnswer, Utxo, MAX_TXS_PER_REQUEST,
};
use crate::byzantine::Misbehaviour;
use crate::finality::TxReport;
use crate::ledger::tx::{Transaction, TxId};
use crate::ledger::Rejection;
use crate::replica::SubmitError;
use crate::state::NodeState;
use crate::store::DiskFaults;

/// Largest request body accepted.
pub const MAX_BODY: usize = 256 * 1024;

pub fn router(state: Arc<NodeState>) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/status", get(status))
        .route("/peers", get(peers))
        .route("/metrics", get(metrics))
        .route("/tx", post(submit_tx))
        .route("/txs", post(submit_txs))
        .route("/tx/{id}", get(get_tx))
        .route("/finalized", get(finalized))
        .route("/utxos", get(utxos))
        .route("/clock", get(clock).put(set_clock))
        .route("/byzantine", get(byzantine).put(set_byzantine))
        .route("/storage", get(storage).put(set_storage))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(state)
}

async fn clock(State(node): State<Arc<NodeState>>) -> Json<crate::clock::ClockReport> {
    Json(node.replica.clock.report())
}

/// Refuses a seam's PUT from anywhere but the node's own namespace (the
/// agent beside it): never from a peer or the host.
fn from_outside(from: std::net::SocketAddr, what: &str) -> Option<Response> {
    (!from.ip().is_loopback()).then(|| {
        error(
            StatusCode::FORBIDDEN,
            format!("{from}: {what} is set from inside the node's namespace only (its agent)"),
        )
    })
}

/// Sets the node's clock skew (loopback only).
async fn set_clock(
    State(node): State<Arc<NodeState>>,
    axum::extract::ConnectInfo(from): axum::extract::ConnectInfo<std::net::SocketAddr>,
    body: Result<Json<crate::clock::Skew>, axum::extract::rejection::JsonRejection>,
) -> Response {
    if let Some(refused) = from_outside(from, "the clock") {
        return refused;
    }
    match body {
        Ok(Json(skew)) => {
            node.replica.clock.set(skew);
            tracing::info!(?skew, "clock skew set");
            Json(node.replica.clock.report()).into_response()
        }
        Err(e) => error(StatusCode::BAD_REQUEST, format!("clock: {e}")),
    }
}

async fn byzantine(State(node): State<Arc<NodeState>>) -> Json<Misbehaviour> {
    Json(node.replica.byzantine.get())
}

/// Switches Byzantine behaviours on or off (loopback only); an empty list
/// makes the node honest again.
async fn set_byzantine(
    State(node): State<Arc<NodeState>>,
    axum::extract::ConnectInfo(from): axum::extract::ConnectInfo<std::net::SocketAddr>,
    body: Result<Json<Misbehaviour>, axum::extract::rejection::JsonRejection>,
) -> Response {
    if let Some(refused) = from_outside(from, "misbehaviour") {
        return refused;
    }
    match body {
        Ok(Json(m)) => {
            tracing::warn!(behaviours = ?m.behaviours, delay_ms = m.delay_ms, "byzantine behaviours set");
            node.replica.byzantine.set(m);
            Json(node.replica.byzantine.get()).into_response()
        }
        Err(e) => error(StatusCode::BAD_REQUEST, format!("byzantine: {e}")),
    }
}

async fn storage(State(node): State<Arc<NodeState>>) -> Json<DiskFaults> {
    Json(node.replica.storage.get())
}

/// Sets the disk faults of the node's store (loopback only); zero both for a
/// healthy disk. A store that failed stays failed until the node restarts.
async fn set_storage(
    State(node): State<Arc<NodeState>>,
    axum::extract::ConnectInfo(from): axum::extract::ConnectInfo<std::net::SocketAddr>,
    body: Result<Json<DiskFaults>, axum::extract::rejection::JsonRejection>,
) -> Response {
    if let Some(refused) = from_outside(from, "the disk") {
        return refused;
    }
    match body {
        Ok(Json(f)) if !(0.0..=100.0).contains(&f.error_percent) => error(
            StatusCode::BAD_REQUEST,
            format!(
                "storage: error_percent {} is not between 0 and 100",
                f.error_percent
            ),
        ),
        Ok(Json(f)) => {
            tracing::warn!(
                fsync_ms = f.fsync_ms,
                error_percent = f.error_percent,
                "disk faults set"
            );
            node.replica.storage.set(f);
            Json(node.replica.storage.get()).into_response()
        }
        Err(e) => error(StatusCode::BAD_REQUEST, format!("storage: {e}")),
    }
}

/// 200 `ok`, or 503 once the store failed (the node no longer votes).
async fn health(State(node): State<Arc<NodeState>>) -> (StatusCode, Json<Health>) {
    match node.replica.failure() {
        None => (
            StatusCode::OK,
            Json(Health {
                status: "ok".into(),
            }),
        ),
        Some(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(Health {
                status: format!("unhealthy: the store failed, the node stopped voting: {e}"),
            }),
        ),
    }
}

async fn status(State(node): State<Arc<NodeState>>) -> Json<Status> {
    let _durable = node.replica.durable().await;
    Json(node.status())
}

async fn peers(State(node): State<Arc<NodeState>>) -> Json<Vec<PeerInfo>> {
    Json(node.network.peers())
}

async fn metrics(State(node): State<Arc<NodeState>>) -> Response {
    let failed = node.replica.failure().is_some();
    node.metrics.store_failed.set(i64::from(failed));
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        node.metrics.render(),
    )
        .into_response()
}

fn error(status: StatusCode, error: String) -> Response {
    (status, Json(ApiError { error })).into_response()
}

/// A body that could not be read (too large, cut off): its status and why.
fn unreadable(e: BytesRejection) -> Response {
    error(
        e.status(),
        format!("cannot read the body: {}", e.body_text()),
    )
}

async fn submit_tx(
    State(node): State<Arc<NodeState>>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let body = match body {
        Ok(b) => b,
        Err(e) => return unreadable(e),
    };
    let tx: Transaction = match serde_json::from_slice(&body) {
        Ok(tx) => tx,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("body is not a transaction ({{\"inputs\", \"outputs\", \"memo\"}}): {e}"),
            )
        }
    };
    match node.replica.submit(tx).await {
        Ok(txid) => (StatusCode::ACCEPTED, Json(Submitted { txid })).into_response(),
        Err(SubmitError::Rejected(r)) => {
            let status = match r.label() {
                "conflict" | "input_spent" => StatusCode::CONFLICT,
                "mempool_full" => StatusCode::SERVICE_UNAVAILABLE,
                _ => StatusCode::UNPROCESSABLE_ENTITY,
            };
            (status, Json(refused(&r))).into_response()
        }
        Err(e @ SubmitError::Unavailable) => error(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    }
}

fn refused(r: &Rejection) -> Refused {
    Refused {
        error: r.to_string(),
        reason: r.label().to_owned(),
    }
}

/// `POST /txs`: a JSON array of at most [`MAX_TXS_PER_REQUEST`] transactions,
/// submitted together; 200 with one [`TxAnswer`] each, in order. A body that
/// is not such an array is refused whole.
async fn submit_txs(
    State(node): State<Arc<NodeState>>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let body = match body {
        Ok(b) => b,
        Err(e) => return unreadable(e),
    };
    let txs: Vec<Transaction> = match serde_json::from_slice(&body) {
        Ok(txs) => txs,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("body is not a JSON array of transactions ({{\"inputs\", \"outputs\", \"memo\"}}): {e}"),
            )
        }
    };
    if txs.len() > MAX_TXS_PER_REQUEST {
        return error(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "{} transactions in one request; send at most {MAX_TXS_PER_REQUEST} per POST /txs",
                txs.len()
            ),
        );
    }
    let answers: Vec<TxAnswer> = node
        .replica
        .submit_many(txs)
        .await
        .into_iter()
        .map(|r| match r {
            Ok(txid) => TxAnswer::Accepted(Submitted { txid }),
            Err(SubmitError::Rejected(r)) => TxAnswer::Refused(refused(&r)),
            Err(e @ SubmitError::Unavailable) => TxAnswer::Refused(Refused {
                error: e.to_string(),
                reason: "unavailable".to_owned(),
            }),
        })
        .collect();
    Json(answers).into_response()
}

async fn get_tx(
    State(node): State<Arc<NodeState>>,
    Path(id): Path<String>,
) -> Result<Json<TxReport>, Response> {
    let txid = TxId::from_hex(&id).ok_or_else(|| {
        error(
            StatusCode::BAD_REQUEST,
            format!("{id:?} is not a transaction id (64 hex digits)"),
        )
    })?;
    let report = {
        let _durable = node.replica.durable().await;
        node.replica.engine().report(&txid)
    };
    report.map(Json).ok_or_else(|| {
        error(
            StatusCode::NOT_FOUND,
            format!("transaction {id} is unknown to this node"),
        )
    })
}

#[derive(serde::Deserialize)]
struct PageQuery {
    #[serde(default)]
    after: usize,
    limit: Option<usize>,
}

/// Most entries per page of `/finalized`.
const MAX_PAGE: usize = 10_000;

async fn finalized(
    State(node): State<Arc<NodeState>>,
    Query(q): Query<PageQuery>,
) -> Json<FinalizedPage> {
    let _durable = node.replica.durable().await;
    let engine = node.replica.engine();
    let page = engine.finalized_page(q.after, q.limit.unwrap_or(MAX_PAGE).min(MAX_PAGE));
    Json(FinalizedPage {
        next: page.first + page.entries.len(),
        first: page.first,
        entries: page
            .entries
            .into_iter()
            .map(|(txid, at_ms)| FinalizedEntry { txid, at_ms })
            .collect(),
        total: page.total,
        boot_ms: node.boot_ms,
        snapshots: engine.snapshots_installed(),
    })
}

#[derive(serde::Deserialize)]
struct OwnerQuery {
    owner: String,
}

async fn utxos(
    State(node): State<Arc<NodeState>>,
    Query(q): Query<OwnerQuery>,
) -> Result<Json<Vec<Utxo>>, Response> {
    let owner = crate::identity::NodeId::from_hex(&q.owner).map_err(|_| {
        error(
            StatusCode::BAD_REQUEST,
            format!("owner {:?} is not a public key (64 hex digits)", q.owner),
        )
    })?;
    let _durable = node.replica.durable().await;
    let engine = node.replica.engine();
    let list = engine
        .ledger()
        .outputs_of(&owner)
        .into_iter()
        .map(|(outpoint, out)| Utxo {
            outpoint,
            value: out.value,
        })
        .collect();
    Ok(Json(list))
}

async fn not_found(uri: Uri) -> (StatusCode, Json<ApiError>) {
    (
        StatusCode::NOT_FOUND,
        Json(ApiError {
            error: format!(
                "no such endpoint {}; try /status, /peers, /health, /metrics, /tx, /txs or /finalized",
                uri.path()
            ),
        }),
    )
}
