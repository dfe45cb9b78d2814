//! The instance metadata service, for EcsRamRole credentials: on the simulator's own address,
//! the paths ECS serves on `http://100.100.100.200`:
//!
//! - `PUT /latest/api/token` → a session token (IMDSv2 hardening; optional, as on ECS);
//! - `GET /latest/meta-data/ram/security-credentials/` → the attached role names, one a line;
//! - `GET /latest/meta-data/ram/security-credentials/<role>` → temporary keys of that role
//!   (`Code: Success`, `AccessKeyId`, `AccessKeySecret`, `SecurityToken`, `Expiration`,
//!   `LastUpdated`), or 404 for a role that is not attached (`bakerd sim --ecs-ram-role`).
//!
//! Keys are issued by [`super::sts::issue`], so the ECS API accepts them like STS keys.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use axum::{Json, Router};

use super::core::Sim;
use super::sts;

/// Lifetime of the keys the metadata service hands out (ECS: about 6 hours).
const ROLE_KEY_SECS: u64 = 6 * 3600;

/// The metadata routes, merged into the simulator's router.
pub fn routes() -> Router<Arc<Sim>> {
    Router::new()
        .route("/latest/api/token", put(token))
        .route("/latest/meta-data/ram/security-credentials/", get(roles))
        .route(
            "/latest/meta-data/ram/security-credentials/{role}",
            get(role_keys),
        )
}

async fn token() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

async fn roles(State(sim): State<Arc<Sim>>) -> String {
    sim.creds.instance_roles.join("\n")
}

async fn role_keys(State(sim): State<Arc<Sim>>, Path(role): Path<String>) -> Response {
    if !sim.creds.instance_roles.contains(&role) {
        return (StatusCode::NOT_FOUND, "Not Found").into_response();
    }
    let now = super::store::now_ms();
    let mut keys = sts::issue(&sim.creds, ROLE_KEY_SECS, now);
    if let Some(map) = keys.as_object_mut() {
        map.insert("Code".into(), "Success".into());
        let updated = time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default();
        map.insert("LastUpdated".into(), updated.into());
    }
    Json(keys).into_response()
}
