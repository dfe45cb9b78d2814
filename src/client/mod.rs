//! The typed ECS API client (issue 3): signed requests (V1 or V3), retries with backoff and jitter,
//! a process-wide per-API rate limiter, typed actions with paging, adaptive waiters, and the
//! credential chain.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use bakerd::client::api::instances::{DescribeInstances, InstanceSpec, RunInstances};
//! use bakerd::client::{ClientConfig, EcsClient, InstanceStatus, Tag};
//! let mut config = ClientConfig::new("cn-hangzhou"); // env: credentials, BAKERD_ECS_ENDPOINT
//! config.endpoint = None; // or the spec's `endpoint`
//! let client = EcsClient::new(config)?;
//! let run = RunInstances {
//!     spec: InstanceSpec {
//!         region_id: "cn-hangzhou".into(),
//!         image_id: "ubuntu_22_04_x64_20G_alibase_20240926.vhd".into(),
//!         instance_type: "ecs.s2.large".into(),
//!         security_group_id: Some("sg-1".into()),
//!         tags: vec![Tag::new("bakerd:managed", "true"), Tag::new("bakerd:build-id", "b-42")],
//!         client_token: Some("b-42-instance".into()), // deterministic per build step
//!         ..Default::default()
//!     },
//!     amount: None,
//! };
//! let id = client.call(&run).await?.instance_id_sets.remove(0);
//! let running = client
//!     .waiter()
//!     .on_progress(|p| eprintln!("{} {} ({} polls)", p.resource, p.status, p.polls))
//!     .instance_status("cn-hangzhou", &id, InstanceStatus::Running)
//!     .await?;
//! let all = client.list_all(DescribeInstances::in_region("cn-hangzhou")).await?;
//! # Ok(()) }
//! ```
//!
//! Errors: [`ClientError::Api`] carries the cloud's answer ([`ApiError`]: action, Code, Message,
//! RequestId, HTTP status, attempts, hint) and prints as
//! `ECS RunInstances failed: InvalidImageId.NotFound (HTTP 404, RequestId 7A…): … Hint: …`;
//! [`ClientError::is_not_found`] lets deletes treat "already gone" as done.
//!
//! Retry safety (Guarantees / Caveats):
//! - Error answers that are retryable ([`retry::classify`]) are retried for every action: the cloud
//!   did not execute a throttled or 5xx request.
//! - Every attempt carries a fresh `SignatureNonce` and timestamp; the parameters, including any
//!   `ClientToken`, stay the same, so a retried create returns the first result.
//! - A connection that failed before sending is retried for every action.
//! - A request that may have been sent but got no answer (timeout, reset) is retried for read-only
//!   actions and for creates that carry a `ClientToken` (one that supports it but was sent without
//!   one counts as unprotected). For other mutating actions (Start/Stop/
//!   DeleteInstance, ImportKeyPair, Delete*, tags…) the client returns
//!   [`ClientError::OutcomeUnknown`]: the caller must look the resource up (the reconciler finds its
//!   resources by deterministic names and bakerd tags) and then decide whether to repeat the call.
//!   Such actions are naturally convergent (a second Start/Stop/Delete answers with a state or
//!   NotFound error that the caller can read as "already done"), but only the caller knows that.

pub mod api;
pub mod credentials;
pub mod error;
pub mod product;
pub mod retry;
pub mod timings;
pub mod transport;
pub mod types;
pub mod wait;
mod waiters;

pub use api::{Action, Mutation, Params};
pub use credentials::{
    CredentialProvider, CredentialSource, Credentials, CredentialsError, Env, ExplicitCredentials,
    Secret,
};
pub use error::{ApiError, ClientError};
pub use product::{Product, ECS_API_VERSION, ENDPOINT_ENV, VPC_API_VERSION, VPC_ENDPOINT_ENV};
pub use retry::{RateLimiter, RetryPolicy, Retryability};
pub use transport::{share_http_clients, SignatureStyle};
pub use types::*;

use product::Endpoint;
use rand::SeedableRng;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;
use transport::{shared_http, RawResponse, SendFailure, SignInput};

/// How to build an [`EcsClient`].
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Region the client talks to; also picks the default endpoint.
    pub region: String,
    /// Endpoint override (`http://127.0.0.1:8086`, `ecs.example.com`); wins over `BAKERD_ECS_ENDPOINT`.
    pub endpoint: Option<String>,
    /// VPC endpoint override; wins over `BAKERD_VPC_ENDPOINT`. Unset, VPC calls follow the ECS
    /// override (see [`product::vpc_url`]).
    pub vpc_endpoint: Option<String>,
    /// Signature style; see [`SignatureStyle`] for the default's rationale.
    pub signature_style: SignatureStyle,
    /// Explicit credentials (the spec); the rest of the chain is read from `env`.
    pub credentials: ExplicitCredentials,
    /// Environment for the credential chain and `BAKERD_ECS_ENDPOINT`.
    pub env: Env,
    /// Retry bounds per call.
    pub retry: RetryPolicy,
    /// TCP + TLS connect timeout.
    pub connect_timeout: Duration,
    /// Whole-request timeout (ECS answers within seconds; async work is polled, not awaited).
    pub request_timeout: Duration,
    /// Per-API pacing; [`RateLimiter::shared`] unless a test wants its own.
    pub rate_limiter: Arc<RateLimiter>,
}

impl ClientConfig {
    /// Defaults for `region`, with credentials and endpoint from the process environment.
    pub fn new(region: impl Into<String>) -> Self {
        ClientConfig {
            region: region.into(),
            endpoint: None,
            vpc_endpoint: None,
            signature_style: SignatureStyle::default(),
            credentials: ExplicitCredentials::default(),
            env: Env::from_process(),
            retry: RetryPolicy::default(),
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            rate_limiter: RateLimiter::shared(),
        }
    }

    /// The ECS base URL: explicit endpoint, else `BAKERD_ECS_ENDPOINT`, else
    /// `https://ecs.<region>.aliyuncs.com`.
    pub fn base_url(&self) -> Result<String, ClientError> {
        product::ecs_url(self.endpoint.as_deref(), &self.env, &self.region)
    }

    /// The VPC base URL (see [`product::vpc_url`]).
    pub fn vpc_base_url(&self) -> Result<String, ClientError> {
        product::vpc_url(
            self.vpc_endpoint.as_deref(),
            self.endpoint.as_deref(),
            &self.env,
            &self.region,
        )
    }
}

/// Counters of what the client did, for tests and benchmarks.
#[derive(Debug, Default)]
pub struct ClientStats {
    /// HTTP requests sent (every attempt).
    pub attempts: AtomicU64,
    /// Attempts that were retries.
    pub retries: AtomicU64,
    /// Answers that were throttling errors.
    pub throttled: AtomicU64,
}

/// A signed, retrying ECS API client. Cheap to clone; clones share the connection pool.
#[derive(Debug, Clone)]
pub struct EcsClient {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    http: reqwest::Client,
    ecs: Endpoint,
    vpc: Endpoint,
    region: String,
    credentials: CredentialProvider,
    style: SignatureStyle,
    retry: RetryPolicy,
    limiter: Arc<RateLimiter>,
    stats: ClientStats,
}

impl EcsClient {
    /// Resolves credentials and the endpoint, and builds the HTTP client.
    pub fn new(config: ClientConfig) -> Result<Self, ClientError> {
        let plan = credentials::resolve(&config.credentials, &config.env)?;
        let ecs = Endpoint::parse(config.base_url()?)?;
        let vpc = Endpoint::parse(config.vpc_base_url()?)?;
        let http = shared_http(config.connect_timeout, config.request_timeout)?;
        let credentials = CredentialProvider::new(plan, http.clone());
        Ok(EcsClient {
            inner: Arc::new(Inner {
                http,
                ecs,
                vpc,
                region: config.region,
                credentials,
                style: config.signature_style,
                retry: config.retry,
                limiter: config.rate_limiter,
                stats: ClientStats::default(),
            }),
        })
    }

    /// The region this client was built for.
    pub fn region(&self) -> &str {
        &self.inner.region
    }

    /// The ECS endpoint base URL in use.
    pub fn base_url(&self) -> &str {
        &self.inner.ecs.base_url
    }

    /// The base URL in use for `product`.
    pub fn product_url(&self, product: Product) -> &str {
        &self.inner.endpoint(product).base_url
    }

    /// Where the credentials came from.
    pub fn credential_source(&self) -> &CredentialSource {
        self.inner.credentials.source()
    }

    /// The AccessKeyId of static keys (not secret); `None` for keys fetched from STS or metadata.
    pub fn static_access_key_id(&self) -> Option<&str> {
        self.inner.credentials.static_access_key_id()
    }

    /// What the client has done so far.
    pub fn stats(&self) -> &ClientStats {
        &self.inner.stats
    }

    /// Calls a typed action.
    pub async fn call<A: Action>(&self, request: &A) -> Result<A::Response, ClientError> {
        let (product, name) = (request.product(), request.name());
        let params = request.params().into_vec();
        let value = self
            .invoke_product(product, name, A::MUTATION, &params)
            .await?;
        serde_json::from_value(value.clone()).map_err(|source| ClientError::Decode {
            product,
            action: name.to_string(),
            body_start: value.to_string().chars().take(200).collect(),
            source,
        })
    }

    /// Calls any ECS action with raw parameters and returns the JSON body; retries as the module
    /// docs say.
    pub async fn invoke(
        &self,
        action: &str,
        mutation: Mutation,
        params: &[(String, String)],
    ) -> Result<serde_json::Value, ClientError> {
        self.invoke_product(Product::Ecs, action, mutation, params)
            .await
    }

    /// Calls any action of `product` with raw parameters and returns the JSON body. Credentials,
    /// retries and the rate limiter are shared; the limiter paces each product's actions apart.
    pub async fn invoke_product(
        &self,
        product: Product,
        action: &str,
        mutation: Mutation,
        params: &[(String, String)],
    ) -> Result<serde_json::Value, ClientError> {
        let inner = &self.inner;
        let call = Call {
            product,
            action,
            mutation,
            params,
        };
        let credentials = inner
            .credentials
            .get()
            .await
            .map_err(|e| ClientError::Credentials(e.into()))?;
        let limiter_key = format!(
            "{}/{}/{product}/{action}",
            credentials.access_key_id, inner.region
        );
        let call = Call {
            mutation: effective_mutation(mutation, params),
            ..call
        };
        let started = Instant::now();
        let mut rng = rand::rngs::StdRng::from_entropy();
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            inner.limiter.acquire(&limiter_key).await;
            let sent = self.attempt(&credentials, &call, attempt);
            let (class, error) = match sent.await {
                Ok(value) => {
                    inner.limiter.on_success(&limiter_key);
                    return Ok(value);
                }
                Err(AttemptFailure::Fatal(e)) => return Err(e),
                Err(AttemptFailure::Retryable { class, error }) => (class, error),
            };
            if class == Retryability::Throttled {
                inner.stats.throttled.fetch_add(1, Ordering::Relaxed);
                inner.limiter.on_throttled(&limiter_key);
            }
            let delay = inner.retry.delay(attempt, class, &mut rng);
            if attempt >= inner.retry.max_attempts
                || started.elapsed() + delay > inner.retry.deadline
            {
                let endpoint = &inner.endpoint(product).base_url;
                return Err(error.into_client_error(&call, endpoint, attempt, started));
            }
            tracing::debug!(%product, action, attempt, ?class, ?delay, "retrying call");
            tokio::time::sleep(delay).await;
            inner.stats.retries.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// One signed attempt with a fresh nonce and timestamp.
    async fn attempt(
        &self,
        credentials: &Credentials,
        call: &Call<'_>,
        attempt: u32,
    ) -> Result<serde_json::Value, AttemptFailure> {
        let inner = &self.inner;
        let endpoint = inner.endpoint(call.product);
        let nonce = uuid::Uuid::new_v4().simple().to_string();
        let timestamp = utc_timestamp();
        let request = transport::sign_request(
            inner.style,
            &SignInput {
                action: call.action,
                version: call.product.version(),
                params: call.params,
                credentials,
                host: &endpoint.host,
                nonce: &nonce,
                timestamp: &timestamp,
            },
        );
        inner.stats.attempts.fetch_add(1, Ordering::Relaxed);
        match transport::send(&inner.http, &endpoint.base_url, &request).await {
            Ok(raw) => self.interpret(credentials, call, raw, &request.string_to_sign, attempt),
            Err(SendFailure::NotSent(e)) if is_unreachable(&e) => {
                Err(AttemptFailure::Fatal(ClientError::Unreachable {
                    product: call.product,
                    action: call.action.to_string(),
                    endpoint: endpoint.base_url.clone(),
                    cause: root_cause(&e),
                }))
            }
            Err(SendFailure::NotSent(e)) => Err(AttemptFailure::Retryable {
                class: Retryability::Transient,
                error: PendingError::Transport(e),
            }),
            Err(SendFailure::MaybeSent(e)) => Err(maybe_sent_failure(call, e)),
        }
    }

    /// Turns an HTTP answer into a value or a classified error.
    fn interpret(
        &self,
        credentials: &Credentials,
        call: &Call<'_>,
        raw: RawResponse,
        our_string_to_sign: &str,
        attempt: u32,
    ) -> Result<serde_json::Value, AttemptFailure> {
        if (200..300).contains(&raw.status) {
            return serde_json::from_str(&raw.body).map_err(|source| {
                AttemptFailure::Fatal(ClientError::Decode {
                    product: call.product,
                    action: call.action.to_string(),
                    body_start: raw.body.chars().take(200).collect(),
                    source,
                })
            });
        }
        let api = api_error(credentials, call, &raw, our_string_to_sign, attempt);
        let class = retry::classify(&api.code, raw.status);
        if class.is_retryable() {
            Err(AttemptFailure::Retryable {
                class,
                error: PendingError::Api(Box::new(api)),
            })
        } else {
            Err(AttemptFailure::Fatal(api.into()))
        }
    }
}

/// Reads the §2.4 error envelope (or makes one up from a non-JSON body) and adds the hint.
fn api_error(
    credentials: &Credentials,
    call: &Call<'_>,
    raw: &RawResponse,
    sts: &str,
    attempt: u32,
) -> ApiError {
    {
        let body: serde_json::Value = serde_json::from_str(&raw.body).unwrap_or_default();
        let field = |name: &str| body.get(name).and_then(|v| v.as_str()).map(str::to_string);
        let code = field("Code").unwrap_or_else(|| format!("HTTP{}", raw.status));
        let message = field("Message").unwrap_or_else(|| raw.body.chars().take(200).collect());
        let context = error::HintContext {
            action: call.action,
            access_key_id: &credentials.access_key_id,
            credential_source: &credentials.source,
            our_string_to_sign: sts,
        };
        ApiError {
            product: call.product,
            action: call.action.to_string(),
            hint: error::hint_for(&code, &message, &context),
            request_id: field("RequestId").unwrap_or_else(|| "-".into()),
            recommend: field("Recommend"),
            http_status: raw.status,
            code,
            message,
            attempts: attempt,
        }
    }
}

/// Connection refused and name resolution failures: nothing listens there, or the name does not
/// exist. Retrying for a minute only hides a wrong endpoint, so these fail at once.
fn is_unreachable(e: &reqwest::Error) -> bool {
    let cause = root_cause(e).to_ascii_lowercase();
    e.is_connect()
        && (cause.contains("connection refused")
            || cause.contains("dns error")
            || cause.contains("failed to lookup address")
            || cause.contains("name or service not known"))
}

/// The innermost error message of a chain (`Connection refused (os error 111)`), and its
/// wrappers' texts when they add something (reqwest's own says "error sending request").
fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut texts = vec![e.to_string()];
    let mut current = e.source();
    while let Some(inner) = current {
        texts.push(inner.to_string());
        current = inner.source();
    }
    texts
        .into_iter()
        .rev()
        .take(2)
        .collect::<Vec<_>>()
        .join(" / ")
}

/// A create that supports `ClientToken` but was sent without one is as unprotected as any other.
fn effective_mutation(mutation: Mutation, params: &[(String, String)]) -> Mutation {
    let has_token = params
        .iter()
        .any(|(k, v)| k == "ClientToken" && !v.is_empty());
    match mutation {
        Mutation::ClientToken if !has_token => Mutation::Unprotected,
        other => other,
    }
}

/// A request that may have been executed: retry only when repeating it is harmless.
fn maybe_sent_failure(call: &Call<'_>, e: reqwest::Error) -> AttemptFailure {
    if call.mutation == Mutation::Unprotected {
        AttemptFailure::Fatal(ClientError::OutcomeUnknown {
            product: call.product,
            action: call.action.to_string(),
            source: e,
        })
    } else {
        AttemptFailure::Retryable {
            class: Retryability::Transient,
            error: PendingError::Transport(e),
        }
    }
}

/// One API call: what is sent, to which product, and how safe a repeat is.
#[derive(Clone, Copy)]
struct Call<'a> {
    product: Product,
    action: &'a str,
    mutation: Mutation,
    params: &'a [(String, String)],
}

impl Inner {
    fn endpoint(&self, product: Product) -> &Endpoint {
        match product {
            Product::Ecs => &self.ecs,
            Product::Vpc => &self.vpc,
        }
    }
}

/// The outcome of one failed attempt.
enum AttemptFailure {
    /// Give up now.
    Fatal(ClientError),
    /// Retry if the budget allows; `error` is returned otherwise.
    Retryable {
        class: Retryability,
        error: PendingError,
    },
}

/// The error of the latest retryable attempt, returned when the budget runs out.
enum PendingError {
    Api(Box<ApiError>),
    Transport(reqwest::Error),
}

impl PendingError {
    fn into_client_error(
        self,
        call: &Call<'_>,
        endpoint: &str,
        attempts: u32,
        started: Instant,
    ) -> ClientError {
        match self {
            PendingError::Api(mut e) => {
                e.attempts = attempts;
                ClientError::Api(e)
            }
            PendingError::Transport(source) => ClientError::Transport {
                product: call.product,
                action: call.action.to_string(),
                endpoint: endpoint.to_string(),
                attempts,
                elapsed: started.elapsed(),
                source,
            },
        }
    }
}

/// Now, as `yyyy-MM-ddTHH:mm:ssZ` (UTC).
pub(crate) fn utc_timestamp() -> String {
    let format =
        time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");
    time::OffsetDateTime::now_utc()
        .format(format)
        .expect("a fixed format always formats")
}

#[cfg(test)]
mod tests {
    use super::*;

    const CANARY: &str = "CANARY-secret-91c2";

    fn config() -> ClientConfig {
        let mut c = ClientConfig::new("cn-hangzhou");
        c.env = Env::from_pairs([
            ("ALIBABA_CLOUD_ACCESS_KEY_ID", "id"),
            ("ALIBABA_CLOUD_ACCESS_KEY_SECRET", CANARY),
            ("ALIBABA_CLOUD_SECURITY_TOKEN", CANARY),
        ]);
        c
    }

    #[test]
    fn endpoint_is_explicit_then_env_then_regional_default() {
        let mut c = config();
        assert_eq!(
            c.base_url().unwrap(),
            "https://ecs.cn-hangzhou.aliyuncs.com"
        );
        c.env = Env::from_pairs([(ENDPOINT_ENV, "http://127.0.0.1:8086/")]);
        assert_eq!(c.base_url().unwrap(), "http://127.0.0.1:8086");
        c.endpoint = Some("https://ecs.example.com".into());
        assert_eq!(c.base_url().unwrap(), "https://ecs.example.com");
    }

    #[test]
    fn an_endpoint_without_a_scheme_is_an_error_naming_where_it_came_from() {
        let mut c = config();
        c.env = Env::from_pairs([(ENDPOINT_ENV, "127.0.0.1:8086")]);
        let err = c.base_url().unwrap_err().to_string();
        assert!(
            err.contains("127.0.0.1:8086") && err.contains(ENDPOINT_ENV),
            "{err}"
        );
        assert!(err.contains("http://127.0.0.1:8086"), "{err}");
    }

    #[test]
    fn timestamps_have_the_documented_format() {
        let ts = utc_timestamp();
        assert_eq!(ts.len(), 20, "{ts}");
        assert!(ts.ends_with('Z') && ts.as_bytes()[10] == b'T', "{ts}");
    }

    #[test]
    fn no_secret_in_debug_of_config_or_client() {
        let mut c = config();
        c.credentials.access_key_secret = Some(Secret::new(CANARY));
        c.credentials.access_key_id = Some("id".into());
        assert!(!format!("{c:?}").contains(CANARY));
        let client = EcsClient::new(c).unwrap();
        assert!(!format!("{client:?}").contains(CANARY));
    }
}
