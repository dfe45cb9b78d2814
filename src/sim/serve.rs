//! The HTTP accept loop, with the limits a server on a shared machine needs: at most
//! `max_connections` connections at once, and `read_timeout` for a client to send a request's headers
//! (which is also how long a kept-alive connection may sit idle) and, separately, its body.
//!
//! Why our own loop rather than `axum::serve`: axum's server takes no header-read timeout and no
//! connection cap, so one client opening connections and sending nothing (slowloris) could hold the
//! simulator's sockets forever. hyper's HTTP/1 builder has the timeout; a semaphore is the cap.
//!
//! Guarantees: a connection past the cap waits in the kernel's accept queue until another closes; a
//! connection that has not sent a whole request head within `read_timeout` is closed; on shutdown no
//! new connection is accepted and open ones get up to [`DRAIN_TIMEOUT`] to finish their request.
//! Caveats: HTTP/1 only (what every Alibaba Cloud SDK speaks).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// How long open connections may take to finish once the simulator is asked to stop.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest request body accepted (the ECS API's own limit is far below).
const MAX_BODY_BYTES: usize = 2 * 1024 * 1024;

/// Connection limits of the HTTP server.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Time to send a request's headers (also the idle time allowed between requests) and its body.
    pub read_timeout: Duration,
    /// Connections served at once.
    pub max_connections: usize,
}

/// Serves `app` on `listener` under `limits` until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: Limits,
    shutdown: impl Future<Output = ()>,
) {
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let graceful = GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.read_timeout);
    let app = app.layer(axum::middleware::from_fn_with_state(
        limits,
        read_body_within,
    ));
    tokio::pin!(shutdown);
    while let Some((stream, permit)) = next_connection(&listener, &permits, shutdown.as_mut()).await
    {
        let conn =
            http.serve_connection(TokioIo::new(stream), TowerToHyperService::new(app.clone()));
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            // Ends on close, on a header-read timeout, or (by unwinding) on an injected drop.
            let _ = conn.await;
            drop(permit);
        });
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(DRAIN_TIMEOUT) => {
            tracing::warn!("connections still open after {DRAIN_TIMEOUT:?}; stopping anyway");
        }
    }
}

/// Waits for a free slot, then for a connection; `None` once `shutdown` resolves.
async fn next_connection(
    listener: &TcpListener,
    permits: &Arc<Semaphore>,
    mut shutdown: std::pin::Pin<&mut impl Future<Output = ()>>,
) -> Option<(TcpStream, OwnedSemaphorePermit)> {
    loop {
        let permit = tokio::select! {
            p = permits.clone().acquire_owned() => p.expect("the semaphore is never closed"),
            () = &mut shutdown => return None,
        };
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => return Some((stream, permit)),
                Err(e) => {
                    // Out of file descriptors and the like: wait instead of spinning.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            () = &mut shutdown => return None,
        }
    }
}

/// Reads the whole body within the read timeout (a slow body holds a connection like slow headers
/// would), then hands the request on with the buffered body.
async fn read_body_within(State(limits): State<Limits>, req: Request, next: Next) -> Response {
    let (parts, body) = req.into_parts();
    let read = axum::body::to_bytes(body, MAX_BODY_BYTES);
    match tokio::time::timeout(limits.read_timeout, read).await {
        Ok(Ok(bytes)) => {
            next.run(Request::from_parts(parts, Body::from(bytes)))
                .await
        }
        Ok(Err(_)) => (
            StatusCode::PAYLOAD_TOO_LARGE,
            [(header::CONNECTION, "close")],
            format!("the request body is unreadable or larger than {MAX_BODY_BYTES} bytes"),
        )
            .into_response(),
        Err(_) => (
            StatusCode::REQUEST_TIMEOUT,
            [(header::CONNECTION, "close")],
            format!(
                "the request body did not arrive within {}s",
                limits.read_timeout.as_secs_f64()
            ),
        )
            .into_response(),
    }
}
