//! Building one signed HTTP request (pure, on top of [`crate::sign`]) and sending it (reqwest).
//!
//! Wire format, as the official SDKs send it (`docs/ecs-api.md` §2.2, §7): `POST /?<params>` with an
//! empty body; V1 puts the common parameters and `Signature` in the query, V3 puts the action's
//! parameters in the query and everything else in `x-acs-*` headers plus `Authorization`.

use super::credentials::Credentials;
use crate::sign;
use std::fmt;
use std::time::Duration;

/// Which signature the client sends.
///
/// The default is [`SignatureStyle::V3`]: it is what Alibaba Cloud's current SDKs send by default,
/// uses HMAC-SHA256 instead of SHA-1, and binds the host, action and API version into the signature
/// (V1 signs only the parameters). V1 stays available for gateways and proxies that only know the
/// classic RPC signature; both are tested against the simulator and against the official SDKs'
/// signers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, serde::Serialize)]
pub enum SignatureStyle {
    /// `SignatureVersion=1.0`, HMAC-SHA1, every parameter signed.
    #[serde(rename = "v1", alias = "V1")]
    V1,
    /// `ACS3-HMAC-SHA256`, canonical request over method, query, headers and body hash.
    #[default]
    #[serde(rename = "v3", alias = "V3")]
    V3,
}

impl std::str::FromStr for SignatureStyle {
    type Err = String;
    /// `v1` or `v3`, any case (spec files and command lines).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "v1" => Ok(SignatureStyle::V1),
            "v3" => Ok(SignatureStyle::V3),
            other => Err(format!("unknown signature style {other:?}; use v1 or v3")),
        }
    }
}

/// What is signed for one attempt; `nonce` and `timestamp` are fresh for every attempt.
pub struct SignInput<'a> {
    pub action: &'a str,
    pub version: &'a str,
    /// The action's own parameters (already flattened).
    pub params: &'a [(String, String)],
    pub credentials: &'a Credentials,
    /// `host[:port]` exactly as the HTTP `Host` header will carry it.
    pub host: &'a str,
    pub nonce: &'a str,
    /// UTC `yyyy-MM-ddTHH:mm:ssZ`.
    pub timestamp: &'a str,
}

/// A request ready to send: `POST /?<query>` with these headers and an empty body.
#[derive(Clone)]
pub struct SignedRequest {
    pub query: Vec<(String, String)>,
    pub headers: Vec<(String, String)>,
    /// Our string to sign, kept to diagnose `SignatureDoesNotMatch`.
    pub string_to_sign: String,
}

impl fmt::Debug for SignedRequest {
    /// Only parameter names: values may hold an STS token or an instance password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.query.iter().map(|(k, _)| k.as_str()).collect();
        let headers: Vec<&str> = self.headers.iter().map(|(k, _)| k.as_str()).collect();
        f.debug_struct("SignedRequest")
            .field("query_names", &names)
            .field("header_names", &headers)
            .finish_non_exhaustive()
    }
}

impl SignedRequest {
    /// The query string, every name and value percent-encoded by the signer's rules, so the server
    /// decodes exactly the bytes that were signed.
    pub fn query_string(&self) -> String {
        self.query
            .iter()
            .map(|(k, v)| format!("{}={}", sign::percent_encode(k), sign::percent_encode(v)))
            .collect::<Vec<_>>()
            .join("&")
    }
}

/// Signs with the given style.
pub fn sign_request(style: SignatureStyle, input: &SignInput<'_>) -> SignedRequest {
    match style {
        SignatureStyle::V1 => sign_v1(input),
        SignatureStyle::V3 => sign_v3(input),
    }
}

/// V1: common parameters + the action's, signed together; `Signature` appended.
pub fn sign_v1(input: &SignInput<'_>) -> SignedRequest {
    let creds = input.credentials;
    let mut query: Vec<(String, String)> = input.params.to_vec();
    let common = [
        ("AccessKeyId", creds.access_key_id.as_str()),
        ("Action", input.action),
        ("Format", "JSON"),
        ("SignatureMethod", "HMAC-SHA1"),
        ("SignatureNonce", input.nonce),
        ("SignatureVersion", "1.0"),
        ("Timestamp", input.timestamp),
        ("Version", input.version),
    ];
    query.extend(common.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    if let Some(token) = &creds.security_token {
        query.push(("SecurityToken".into(), token.expose().to_string()));
    }
    let (string_to_sign, signature) =
        sign::v1_sign("POST", &query, creds.access_key_secret.expose());
    query.push(("Signature".into(), signature));
    SignedRequest {
        query,
        headers: vec![("host".into(), input.host.to_string())],
        string_to_sign,
    }
}

/// V3: the action's parameters in the query; `host` and every `x-acs-*` header signed.
pub fn sign_v3(input: &SignInput<'_>) -> SignedRequest {
    let creds = input.credentials;
    let mut headers: Vec<(String, String)> = vec![
        ("host".into(), input.host.to_string()),
        ("x-acs-action".into(), input.action.to_string()),
        (
            "x-acs-content-sha256".into(),
            sign::EMPTY_BODY_SHA256.into(),
        ),
        ("x-acs-date".into(), input.timestamp.to_string()),
        ("x-acs-signature-nonce".into(), input.nonce.to_string()),
        ("x-acs-version".into(), input.version.to_string()),
    ];
    if let Some(token) = &creds.security_token {
        headers.push(("x-acs-accesskey-id".into(), creds.access_key_id.clone()));
        headers.push(("x-acs-security-token".into(), token.expose().to_string()));
    }
    let signed: Vec<String> = headers.iter().map(|(k, _)| k.clone()).collect();
    let query = input.params.to_vec();
    let canonical = sign::v3_canonical_request(&sign::V3Request {
        method: "POST",
        path: "/",
        query: &query,
        headers: &headers,
        signed_headers: &signed,
        payload_hash: sign::EMPTY_BODY_SHA256,
    });
    let string_to_sign = sign::v3_string_to_sign(&canonical);
    let signature = sign::v3_signature(creds.access_key_secret.expose(), &string_to_sign);
    let authorization = sign::v3_authorization(&creds.access_key_id, &signed, &signature);
    headers.push(("authorization".into(), authorization));
    SignedRequest {
        query,
        headers,
        string_to_sign,
    }
}

/// The raw answer to one attempt.
pub struct RawResponse {
    pub status: u16,
    pub body: String,
}

/// Why one attempt got no answer.
pub enum SendFailure {
    /// The connection was never established: the request was certainly not executed.
    NotSent(reqwest::Error),
    /// The request may have reached the server (timeout, connection reset, body lost).
    MaybeSent(reqwest::Error),
}

/// Sends one signed request to `base_url` (scheme://host[:port]).
pub async fn send(
    http: &reqwest::Client,
    base_url: &str,
    request: &SignedRequest,
) -> Result<RawResponse, SendFailure> {
    let url = format!("{base_url}/?{}", request.query_string());
    let mut builder = http.post(url).header("accept", "application/json");
    for (name, value) in &request.headers {
        builder = builder.header(name.as_str(), value.as_str());
    }
    let classify = |e: reqwest::Error| {
        if e.is_connect() || e.is_builder() {
            SendFailure::NotSent(e)
        } else {
            SendFailure::MaybeSent(e)
        }
    };
    let response = builder.send().await.map_err(classify)?;
    let status = response.status().as_u16();
    let body = response.text().await.map_err(SendFailure::MaybeSent)?;
    Ok(RawResponse { status, body })
}

/// Set by the binary (one tokio runtime for the whole process): see [`share_http_clients`].
static SHARE_HTTP: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Makes every client of the process share one HTTP client (connection pool, TLS setup) per
/// timeout pair: the builds of one `apply` then talk to ECS over the same pool.
///
/// Caveat: only for a process with one tokio runtime; pooled connections belong to the runtime
/// that opened them, so tests that start a runtime per test keep separate clients.
pub fn share_http_clients() {
    SHARE_HTTP.store(true, std::sync::atomic::Ordering::Relaxed);
}

/// The HTTP client for these timeouts: the process's shared one when enabled, else a new one.
pub(super) fn shared_http(
    connect: Duration,
    request: Duration,
) -> Result<reqwest::Client, super::ClientError> {
    if !SHARE_HTTP.load(std::sync::atomic::Ordering::Relaxed) {
        return build_http(connect, request);
    }
    type Pool = std::sync::Mutex<std::collections::HashMap<(Duration, Duration), reqwest::Client>>;
    static CLIENTS: std::sync::OnceLock<Pool> = std::sync::OnceLock::new();
    let mut clients = CLIENTS
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    if let Some(client) = clients.get(&(connect, request)) {
        return Ok(client.clone());
    }
    let client = build_http(connect, request)?;
    clients.insert((connect, request), client.clone());
    Ok(client)
}

fn build_http(connect: Duration, request: Duration) -> Result<reqwest::Client, super::ClientError> {
    reqwest::Client::builder()
        .use_rustls_tls()
        .connect_timeout(connect)
        .timeout(request)
        .pool_idle_timeout(Duration::from_secs(60))
        .user_agent(concat!("bakerd/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| super::ClientError::Config(format!("HTTP client: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::credentials::{CredentialSource, Secret};

    fn creds(token: Option<&str>) -> Credentials {
        Credentials {
            access_key_id: "testid".into(),
            access_key_secret: Secret::new("testsecret"),
            security_token: token.map(Secret::new),
            source: CredentialSource::Explicit,
        }
    }

    fn input<'a>(params: &'a [(String, String)], c: &'a Credentials) -> SignInput<'a> {
        SignInput {
            action: "DescribeInstances",
            version: "2014-05-26",
            params,
            credentials: c,
            host: "127.0.0.1:8086",
            nonce: "e54a2e2f439bbf27081a912d6bfcbf71",
            timestamp: "2026-11-25T01:36:13Z",
        }
    }

    #[test]
    fn v1_request_reproduces_the_pop_core_vector_when_sent_as_post() {
        // V1-g's parameters, signed as POST: same string to sign as the vector.
        let params = vec![
            ("InstanceIds".to_string(), "[\"i-abc\"]".to_string()),
            ("RegionId".to_string(), "cn-hangzhou".to_string()),
        ];
        let c = creds(None);
        let req = sign_v1(&input(&params, &c));
        assert_eq!(
            req.query.last().unwrap(),
            &(
                "Signature".to_string(),
                "Cr8a6QPsDxiNW3uFJq9zEdk8Ltk=".to_string()
            )
        );
        assert!(req
            .query_string()
            .contains("Signature=Cr8a6QPsDxiNW3uFJq9zEdk8Ltk%3D"));
    }

    #[test]
    fn v3_request_signs_host_and_every_acs_header_and_verifies() {
        let params = vec![("InstanceId".to_string(), "i-abc".to_string())];
        let c = creds(Some("sts-token"));
        let req = sign_v3(&input(&params, &c));
        let auth = &req.headers.last().unwrap().1;
        let parsed = sign::parse_v3_authorization(auth).unwrap();
        assert_eq!(parsed.access_key_id, "testid");
        assert!(parsed.signed_headers.contains(&"host".to_string()));
        assert!(parsed
            .signed_headers
            .contains(&"x-acs-security-token".to_string()));
        let canonical = sign::v3_canonical_request(&sign::V3Request {
            method: "POST",
            path: "/",
            query: &req.query,
            headers: &req.headers,
            signed_headers: &parsed.signed_headers,
            payload_hash: sign::EMPTY_BODY_SHA256,
        });
        let expected = sign::v3_signature("testsecret", &sign::v3_string_to_sign(&canonical));
        assert_eq!(parsed.signature, expected);
    }

    #[test]
    fn signature_style_parses_from_spec_text() {
        assert_eq!("V1".parse::<SignatureStyle>(), Ok(SignatureStyle::V1));
        assert_eq!(
            serde_json::from_str::<SignatureStyle>("\"v3\"").unwrap(),
            SignatureStyle::V3
        );
        assert!("v2".parse::<SignatureStyle>().is_err());
        assert_eq!(SignatureStyle::default(), SignatureStyle::V3);
    }

    #[test]
    fn signed_request_debug_shows_no_values() {
        let params = vec![("Password".to_string(), "CANARY-pw".to_string())];
        let c = creds(Some("CANARY-token"));
        for style in [SignatureStyle::V1, SignatureStyle::V3] {
            let text = format!("{:?}", sign_request(style, &input(&params, &c)));
            assert!(!text.contains("CANARY"), "{text}");
            assert!(!text.contains("testsecret"), "{text}");
        }
    }
}
