//! What keeps web pages and other local users away from the simulator's HTTP surface.
//!
//! A page open in a browser on the same machine can send requests to `127.0.0.1`: GETs and form POSTs
//! without asking anyone. The simulator serves no pages, so nothing legitimate comes from a browser:
//! - every request carrying an `Origin` header or a `Sec-Fetch-Site` other than `none` (what browsers
//!   add to requests a page makes) is refused, on the ECS API as on `/_sim/*`;
//! - `/_sim/*` (unsigned, and able to inject faults) also needs the `X-Bakerd-Sim-Token` header
//!   holding the token the simulator writes at start to `<data-dir>/sim-token` (0600, new each start):
//!   a page cannot read that file, and a custom header makes the browser ask first (CORS preflight),
//!   which the simulator never grants. A POST must also say `Content-Type: application/json`.
//!
//! Caveats: the ECS API on `/` stays reachable by anyone who can connect and knows a key; the default
//! key is public. The simulator is for one machine's trusted users (README).

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

/// The header carrying the `/_sim` token.
pub const TOKEN_HEADER: &str = "x-bakerd-sim-token";
/// The token's file name in the data dir.
pub const TOKEN_FILE: &str = "sim-token";

/// The `/_sim` token of this run. Never printed: `Debug` redacts it.
#[derive(Clone)]
pub struct SimToken {
    value: Arc<str>,
    /// Where it was written, for error messages that say where to read it.
    pub path: PathBuf,
}

impl std::fmt::Debug for SimToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimToken")
            .field("value", &"** redacted **")
            .field("path", &self.path)
            .finish()
    }
}

impl SimToken {
    /// Makes a fresh random token and writes it to `<data_dir>/sim-token`, mode 0600 (written to a
    /// new private file, then renamed over the old one, so it is never readable by others).
    pub fn create(data_dir: &Path) -> std::io::Result<Self> {
        let value =
            uuid::Uuid::new_v4().simple().to_string() + &uuid::Uuid::new_v4().simple().to_string();
        let path = data_dir.join(TOKEN_FILE);
        let tmp = data_dir.join(format!("{TOKEN_FILE}.tmp"));
        let _ = std::fs::remove_file(&tmp);
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(format!("{value}\n").as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, &path)?;
        Ok(SimToken {
            value: value.into(),
            path,
        })
    }

    /// Compares in constant time, so response timing does not reveal a prefix.
    fn matches(&self, presented: &[u8]) -> bool {
        let expected = self.value.as_bytes();
        presented.len() == expected.len()
            && presented
                .iter()
                .zip(expected)
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0
    }
}

/// Middleware on every route: refuses requests a browser page made.
pub async fn refuse_browsers(req: Request, next: Next) -> Response {
    let headers = req.headers();
    let from_page = headers.contains_key(header::ORIGIN)
        || headers
            .get("sec-fetch-site")
            .is_some_and(|v| v.as_bytes() != b"none");
    if !from_page {
        return next.run(req).await;
    }
    let message =
        "bakerd sim refuses requests made by a web page (Origin or Sec-Fetch-Site header): \
                   call it from a program, not a browser";
    if req.uri().path().starts_with("/_sim") {
        return sim_refusal(StatusCode::FORBIDDEN, message);
    }
    let request_id = uuid::Uuid::new_v4().to_string().to_uppercase();
    (
        StatusCode::FORBIDDEN,
        Json(json!({
            "RequestId": request_id,
            "HostId": "ecs.aliyuncs.com",
            "Code": "Forbidden.BrowserRequest",
            "Message": message,
        })),
    )
        .into_response()
}

/// Middleware on `/_sim/*`: the token header, and a JSON content type on POST.
pub async fn require_token(State(token): State<SimToken>, req: Request, next: Next) -> Response {
    match check_token(&token, req.method(), req.headers()) {
        Ok(()) => next.run(req).await,
        Err((status, message)) => sim_refusal(status, &message),
    }
}

fn check_token(
    token: &SimToken,
    method: &Method,
    headers: &HeaderMap,
) -> Result<(), (StatusCode, String)> {
    let Some(presented) = headers.get(TOKEN_HEADER) else {
        return Err((
            StatusCode::UNAUTHORIZED,
            format!(
                "/_sim needs the header X-Bakerd-Sim-Token with the contents of {} (written at start)",
                token.path.display()
            ),
        ));
    };
    if !token.matches(presented.as_bytes().trim_ascii()) {
        return Err((
            StatusCode::FORBIDDEN,
            format!(
                "X-Bakerd-Sim-Token does not match {} (it changes at every start of the simulator)",
                token.path.display()
            ),
        ));
    }
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.trim()
                .to_ascii_lowercase()
                .starts_with("application/json")
        });
    if method == Method::POST && !json {
        return Err((
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "POST /_sim/* needs Content-Type: application/json".to_string(),
        ));
    }
    Ok(())
}

fn sim_refusal(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({ "error": message }))).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn the_token_file_is_private_and_changes_at_each_start() {
        let dir = tempfile::tempdir().unwrap();
        let first = SimToken::create(dir.path()).unwrap();
        let mode = std::fs::metadata(&first.path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let on_disk = std::fs::read_to_string(&first.path).unwrap();
        assert!(first.matches(on_disk.trim().as_bytes()));
        let second = SimToken::create(dir.path()).unwrap();
        assert!(!second.matches(on_disk.trim().as_bytes()));
        assert!(!format!("{second:?}").contains(on_disk.trim()));
    }

    #[test]
    fn missing_wrong_token_and_non_json_post_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let token = SimToken::create(dir.path()).unwrap();
        let good = std::fs::read_to_string(&token.path).unwrap();
        let good = good.trim();
        let e = check_token(&token, &Method::GET, &headers(&[])).unwrap_err();
        assert_eq!(e.0, StatusCode::UNAUTHORIZED);
        assert!(e.1.contains("sim-token"), "{}", e.1);
        let wrong = headers(&[(TOKEN_HEADER, "0123")]);
        assert_eq!(
            check_token(&token, &Method::GET, &wrong).unwrap_err().0,
            StatusCode::FORBIDDEN
        );
        let ok = headers(&[(TOKEN_HEADER, good)]);
        assert!(check_token(&token, &Method::GET, &ok).is_ok());
        let form = headers(&[(TOKEN_HEADER, good), ("content-type", "text/plain")]);
        assert_eq!(
            check_token(&token, &Method::POST, &form).unwrap_err().0,
            StatusCode::UNSUPPORTED_MEDIA_TYPE
        );
        let json = headers(&[(TOKEN_HEADER, good), ("content-type", "application/json")]);
        assert!(check_token(&token, &Method::POST, &json).is_ok());
    }
}
