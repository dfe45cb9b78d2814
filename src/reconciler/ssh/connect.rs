//! Connecting: TCP + SSH handshake + host-key check + public-key authentication, retried with
//! exponential backoff until a deadline.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use thrussh::client::{self, Handle, Handler};
use thrussh_keys::key::PublicKey;
use tokio::net::TcpStream;

use super::{HostKey, SshError};
use crate::reconciler::keys::BuildKey;

/// First pause between attempts; grows by half each time up to [`MAX_BACKOFF`]. Short because a
/// refused connection costs nothing and sshd often answers a moment after the instance is
/// Running; growing because a machine that takes long to boot should not be hammered.
const FIRST_BACKOFF: Duration = Duration::from_millis(50);
/// Low, because the pause after sshd starts listening is pure delay on every build (half the cap
/// on average); an attempt is a TCP connect, not an API call, so nothing is throttled by it.
const MAX_BACKOFF: Duration = Duration::from_millis(500);
/// Upper bound of one attempt (TCP connect + handshake + auth): a silently dropped SYN (security
/// group) must not eat the whole deadline in one attempt.
const MAX_ATTEMPT: Duration = Duration::from_secs(15);

/// An authenticated SSH connection to one machine. Commands and uploads are methods (see the
/// `exec` and `upload` modules); each opens its own channel, so the session is reusable.
pub struct SshSession {
    /// thrussh's connection handle.
    pub(super) handle: Handle<PinningHandler>,
    /// For messages.
    pub(super) addr: SocketAddr,
}

impl std::fmt::Debug for SshSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SshSession")
            .field("addr", &self.addr)
            .finish()
    }
}

impl SshSession {
    /// The address this session is connected to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Whether the connection is known to be gone (e.g. after an expected disconnect).
    pub fn is_closed(&self) -> bool {
        self.handle.is_closed()
    }

    /// Politely closes the connection. Errors are ignored: the connection may already be gone.
    pub async fn close(mut self) {
        let _ = self
            .handle
            .disconnect(thrussh::Disconnect::ByApplication, "bakerd done", "en")
            .await;
    }
}

/// Records the server's host key during the handshake and accepts it only if it matches the pin.
pub(super) struct PinningHandler {
    pinned: Option<HostKey>,
    seen: Arc<Mutex<Option<HostKey>>>,
}

impl Handler for PinningHandler {
    type Error = thrussh::Error;

    #[allow(clippy::manual_async_fn)]
    fn check_server_key(
        self,
        server_public_key: &PublicKey,
    ) -> impl std::future::Future<Output = Result<(Self, bool), Self::Error>> + Send {
        let got = HostKey::from_public(server_public_key);
        let accepted = self.pinned.as_ref().is_none_or(|pin| pin.same_key(&got));
        *self.seen.lock().unwrap_or_else(|p| p.into_inner()) = Some(got);
        async move { Ok((self, accepted)) }
    }
}

/// Why one attempt failed: worth retrying (machine not ready) or not (wrong host key).
enum AttemptError {
    Retry(String),
    Fatal(SshError),
}

/// Connects to `addr` as `user` with `key`, retrying until `timeout` has passed.
///
/// Guarantees: when `pinned` is given, a server presenting any other host key is refused during the
/// key exchange, before authentication and before any command, with [`SshError::HostKeyMismatch`]
/// (not retried). Returns the server's host key, which the caller persists on first contact.
/// Assumptions: `key`'s public half is authorized for `user` (cloud-init or the image installs it;
/// authentication failures are retried because that can happen late in boot).
/// Caveats: every `.await` is a cancellation point; the deadline may be exceeded by one attempt's
/// duration (at most 15 s).
pub async fn connect_with_retry(
    addr: SocketAddr,
    user: &str,
    key: &BuildKey,
    pinned: Option<&HostKey>,
    timeout: Duration,
) -> Result<(SshSession, HostKey), SshError> {
    let started = Instant::now();
    let mut backoff = FIRST_BACKOFF;
    let mut attempts = 0u32;
    loop {
        attempts += 1;
        let remaining = timeout.saturating_sub(started.elapsed());
        let budget = remaining.clamp(Duration::from_secs(1), MAX_ATTEMPT);
        let last_error = match connect_once(addr, user, key, pinned, budget).await {
            Ok(connected) => return Ok(connected),
            Err(AttemptError::Fatal(error)) => return Err(error),
            Err(AttemptError::Retry(reason)) => reason,
        };
        tracing::debug!(%addr, attempts, %last_error, "SSH not ready yet");
        if started.elapsed() + backoff >= timeout {
            return Err(SshError::ConnectTimeout {
                addr,
                port: addr.port(),
                user: user.to_string(),
                waited_secs: started.elapsed().as_secs(),
                attempts,
                last_error,
            });
        }
        tokio::time::sleep(backoff).await;
        backoff = backoff.mul_f64(1.5).min(MAX_BACKOFF);
    }
}

/// One attempt, bounded by `budget`.
async fn connect_once(
    addr: SocketAddr,
    user: &str,
    key: &BuildKey,
    pinned: Option<&HostKey>,
    budget: Duration,
) -> Result<(SshSession, HostKey), AttemptError> {
    let attempt = handshake_and_auth(addr, user, key, pinned);
    match tokio::time::timeout(budget, attempt).await {
        Ok(result) => result,
        Err(_) => Err(AttemptError::Retry(format!(
            "no SSH handshake within {}s (packets dropped?)",
            budget.as_secs()
        ))),
    }
}

async fn handshake_and_auth(
    addr: SocketAddr,
    user: &str,
    key: &BuildKey,
    pinned: Option<&HostKey>,
) -> Result<(SshSession, HostKey), AttemptError> {
    let stream = TcpStream::connect(addr)
        .await
        .map_err(|e| AttemptError::Retry(format!("TCP connect: {e}")))?;
    let _ = stream.set_nodelay(true);
    let seen = Arc::new(Mutex::new(None));
    let handler = PinningHandler {
        pinned: pinned.cloned(),
        seen: seen.clone(),
    };
    let config = Arc::new(client::Config::default());
    let connected = client::connect_stream(config, stream, handler).await;
    let got = seen.lock().unwrap_or_else(|p| p.into_inner()).clone();
    // Checked before looking at the handshake result: a refused key makes the handshake fail, and
    // the mismatch is what the user must hear about.
    let got = check_pin(addr, pinned, got)?;
    let mut handle = connected.map_err(|e| AttemptError::Retry(format!("SSH handshake: {e}")))?;
    let authenticated = handle
        .authenticate_publickey(user, key.key_pair())
        .await
        .map_err(|e| AttemptError::Retry(format!("authentication: {e}")))?;
    if !authenticated {
        return Err(AttemptError::Retry(format!(
            "public key authentication as '{user}' rejected"
        )));
    }
    Ok((SshSession { handle, addr }, got))
}

fn check_pin(
    addr: SocketAddr,
    pinned: Option<&HostKey>,
    got: Option<HostKey>,
) -> Result<HostKey, AttemptError> {
    let Some(got) = got else {
        return Err(AttemptError::Retry(
            "SSH handshake ended before the server sent its host key".into(),
        ));
    };
    match pinned {
        Some(pin) if !pin.same_key(&got) => Err(AttemptError::Fatal(SshError::HostKeyMismatch {
            addr,
            expected: pin.fingerprint.clone(),
            got: got.fingerprint,
        })),
        _ => Ok(got),
    }
}
