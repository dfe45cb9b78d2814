//! HTTP glue: the ECS API on `/` (GET and POST) and the test endpoints under `/_sim/` (unsigned, but
//! behind the token of [`super::guard`]); no route answers a browser page.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use axum::{Json, Router};
use serde_json::{json, Value};

use super::core::{ApiRequest, Outcome, Sim};
use super::faults::FaultUpdate;
use super::guard::{self, SimToken};
use super::inventory;

pub fn router(sim: Arc<Sim>, token: SimToken) -> Router {
    let test_endpoints = Router::new()
        .route("/_sim/inventory", get(get_inventory))
        .route("/_sim/calls", get(get_calls))
        .route("/_sim/faults", get(get_faults).post(post_faults))
        .route("/_sim/timeline", get(get_timeline))
        .route_layer(axum::middleware::from_fn_with_state(
            token,
            guard::require_token,
        ));
    Router::new()
        .route("/", any(api))
        .merge(super::metadata::routes())
        .merge(test_endpoints)
        .layer(axum::middleware::from_fn(guard::refuse_browsers))
        .with_state(sim)
}

async fn api(
    State(sim): State<Arc<Sim>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if method != Method::GET && method != Method::POST {
        return (
            StatusCode::FORBIDDEN,
            Json(json!({"Code": "UnsupportedHTTPMethod", "Message": "Use GET or POST."})),
        )
            .into_response();
    }
    let req = ApiRequest {
        method: method.as_str().to_string(),
        raw_query: uri.query().unwrap_or("").to_string(),
        headers: headers
            .iter()
            .map(|(n, v)| {
                (
                    n.as_str().to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
        body: body.to_vec(),
    };
    let outcome = tokio::task::spawn_blocking(move || sim.handle(&req)).await;
    match outcome {
        Ok(Outcome::Reply {
            status,
            body,
            xml_root,
        }) => match xml_root {
            Some(root) => (
                status,
                [(header::CONTENT_TYPE, "text/xml;charset=utf-8")],
                to_xml(&root, &body),
            )
                .into_response(),
            None => (status, Json(body)).into_response(),
        },
        // Unwinding the connection task makes hyper close the socket without writing a response,
        // which is what a client sees when the server crashes mid-request. `resume_unwind` skips the
        // panic hook, so nothing is printed.
        Ok(Outcome::Drop) => {
            std::panic::resume_unwind(Box::new("bakerd-sim: injected connection drop"))
        }
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            Json(json!({"Code": "InternalError", "Message": e.to_string()})),
        )
            .into_response(),
    }
}

async fn get_inventory(State(sim): State<Arc<Sim>>) -> Json<Value> {
    let state = sim.lock_state();
    Json(inventory::inventory(&state))
}

async fn get_calls(State(sim): State<Arc<Sim>>) -> Json<Value> {
    Json(sim.calls_report())
}

/// `?since_ms=N` keeps the transitions that became visible at or after N (ms since the epoch).
async fn get_timeline(
    State(sim): State<Arc<Sim>>,
    Query(query): Query<std::collections::HashMap<String, String>>,
) -> Json<Value> {
    let since = query
        .get("since_ms")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let state = sim.lock_state();
    Json(state.timeline.report(since))
}

async fn get_faults(State(sim): State<Arc<Sim>>) -> Json<Value> {
    let faults = sim.faults.lock().unwrap_or_else(|p| p.into_inner());
    Json(serde_json::to_value(&faults.config).unwrap_or_default())
}

async fn post_faults(State(sim): State<Arc<Sim>>, body: Bytes) -> Response {
    let update: FaultUpdate = match serde_json::from_slice(&body) {
        Ok(u) => u,
        Err(e) => {
            return (
                StatusCode::BAD_REQUEST,
                Json(json!({"error": format!("bad fault update: {e}")})),
            )
                .into_response()
        }
    };
    let mut faults = sim.faults.lock().unwrap_or_else(|p| p.into_inner());
    faults.update(update);
    Json(serde_json::to_value(&faults.config).unwrap_or_default()).into_response()
}

/// Renders a JSON body as ECS XML: arrays repeat their wrapper's element name.
pub fn to_xml(root: &str, body: &Value) -> String {
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>");
    write_xml_element(&mut out, root, body);
    out
}

fn write_xml_element(out: &mut String, name: &str, value: &Value) {
    match value {
        Value::Array(items) => {
            for item in items {
                write_xml_element(out, name, item);
            }
        }
        Value::Object(map) => {
            out.push_str(&format!("<{name}>"));
            for (k, v) in map {
                write_xml_element(out, k, v);
            }
            out.push_str(&format!("</{name}>"));
        }
        Value::String(s) => out.push_str(&format!("<{name}>{}</{name}>", xml_escape(s))),
        Value::Null => out.push_str(&format!("<{name}/>")),
        other => out.push_str(&format!("<{name}>{other}</{name}>")),
    }
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
