//! The client's retry loop over real HTTP, against a scripted endpoint that verifies signatures
//! with the shared signer: fresh nonces per attempt, same ClientToken, throttling backs off and
//! slows the API, non-retryable errors are sent once, lost answers to unprotected mutations are
//! reported as "outcome unknown", and a wrong secret is diagnosed from the server's string to sign.

use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Router;
use bakerd::client::api::instances::{InstanceSpec, RunInstances, StartInstance};
use bakerd::client::api::regions::DescribeRegions;
use bakerd::client::{
    ClientConfig, ClientError, EcsClient, Env, RateLimiter, RetryPolicy, Secret, SignatureStyle,
};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What the scripted endpoint saw and will answer.
#[derive(Default)]
struct Script {
    /// Answers to give, in order; when exhausted, success.
    answers: Vec<(u16, &'static str)>,
    /// Decoded query of every request received.
    seen: Vec<HashMap<String, String>>,
}

type Shared = Arc<Mutex<Script>>;

fn decode(query: &str) -> HashMap<String, String> {
    query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| {
            let d = |s: &str| {
                percent_encoding::percent_decode_str(s)
                    .decode_utf8_lossy()
                    .to_string()
            };
            (d(k), d(v))
        })
        .collect()
}

/// Verifies a V1 request with the secret `testsecret`, like the cloud does.
async fn handler(State(script): State<Shared>, RawQuery(query): RawQuery) -> impl IntoResponse {
    let params = decode(&query.unwrap_or_default());
    let mut signed: Vec<(String, String)> = params
        .iter()
        .filter(|(k, _)| *k != "Signature")
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    signed.sort();
    let (sts, sig) = bakerd::sign::v1_sign("POST", &signed, "testsecret");
    let mut s = script.lock().unwrap();
    s.seen.push(params.clone());
    if params.get("Signature") != Some(&sig) {
        let body = format!(
            r#"{{"RequestId":"R-sig","Code":"SignatureDoesNotMatch","Message":"Specified signature is not matched with our calculation. server string to sign is:{sts}"}}"#
        );
        return (StatusCode::BAD_REQUEST, body);
    }
    if s.answers.is_empty() {
        let body = r#"{"RequestId":"R-ok","InstanceIdSets":{"InstanceIdSet":["i-1"]},"Regions":{"Region":[]}}"#;
        return (StatusCode::OK, body.to_string());
    }
    let (status, code) = s.answers.remove(0);
    let body = format!(
        r#"{{"RequestId":"R-{status}","Code":"{code}","Message":"The specified parameter \"InstanceType\" is not valid."}}"#
    );
    (StatusCode::from_u16(status).unwrap(), body)
}

async fn endpoint(answers: Vec<(u16, &'static str)>) -> (String, Shared) {
    let script: Shared = Arc::new(Mutex::new(Script {
        answers,
        seen: vec![],
    }));
    let app = Router::new()
        .route("/", axum::routing::post(handler))
        .with_state(script.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, script)
}

fn client(url: &str, secret: &str, limiter: Arc<RateLimiter>) -> EcsClient {
    let mut c = ClientConfig::new("cn-hangzhou");
    c.env = Env::from_pairs([
        ("ALIYUN_ACCESS_KEY_ID", "testid"),
        ("ALIYUN_ACCESS_KEY_SECRET", secret),
    ]);
    c.endpoint = Some(url.to_string());
    c.signature_style = SignatureStyle::V1;
    c.retry = RetryPolicy::fast();
    c.rate_limiter = limiter;
    EcsClient::new(c).unwrap()
}

fn limiter() -> Arc<RateLimiter> {
    Arc::new(RateLimiter::new(
        Duration::from_millis(5),
        Duration::from_millis(50),
    ))
}

fn run_instances() -> RunInstances {
    RunInstances {
        spec: InstanceSpec {
            region_id: "cn-hangzhou".into(),
            image_id: "ubuntu".into(),
            instance_type: "ecs.s2.large".into(),
            client_token: Some("build-42-instance".into()),
            ..Default::default()
        },
        amount: None,
    }
}

#[tokio::test]
async fn throttled_and_failed_attempts_are_retried_with_fresh_nonces_and_the_same_client_token() {
    let (url, script) = endpoint(vec![
        (400, "Throttling.User"),
        (503, "ServiceUnavailable"),
        (500, "InternalError"),
    ])
    .await;
    let limiter = limiter();
    let c = client(&url, "testsecret", limiter.clone());
    let out = c.call(&run_instances()).await.unwrap();
    assert_eq!(out.instance_id_sets, vec!["i-1".to_string()]);
    let seen = &script.lock().unwrap().seen;
    assert_eq!(seen.len(), 4);
    let nonces: std::collections::HashSet<_> =
        seen.iter().map(|p| p["SignatureNonce"].clone()).collect();
    assert_eq!(nonces.len(), 4, "every attempt needs its own nonce");
    assert!(seen.iter().all(|p| p["ClientToken"] == "build-42-instance"));
    assert_eq!(
        c.stats().retries.load(std::sync::atomic::Ordering::Relaxed),
        3
    );
    assert_eq!(
        c.stats()
            .throttled
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
}

#[tokio::test]
async fn a_non_retryable_error_is_sent_once_and_names_the_parameter() {
    let (url, script) = endpoint(vec![(400, "InvalidParameter")]).await;
    let err = client(&url, "testsecret", limiter())
        .call(&run_instances())
        .await
        .unwrap_err();
    assert_eq!(script.lock().unwrap().seen.len(), 1);
    let api = err.api().expect("an API error");
    assert_eq!(
        (api.code.as_str(), api.http_status, api.attempts),
        ("InvalidParameter", 400, 1)
    );
    let text = err.to_string();
    assert!(
        text.starts_with("ECS RunInstances failed: InvalidParameter (HTTP 400, RequestId R-400)"),
        "{text}"
    );
    assert!(
        text.contains("Hint: check the parameter InstanceType"),
        "{text}"
    );
}

#[tokio::test]
async fn a_wrong_secret_is_diagnosed_from_the_server_string_to_sign() {
    let (url, script) = endpoint(vec![]).await;
    let canary = "CANARY-wrong-secret-77";
    let err = client(&url, canary, limiter())
        .call(&DescribeRegions::default())
        .await
        .unwrap_err();
    assert_eq!(
        script.lock().unwrap().seen.len(),
        1,
        "SignatureDoesNotMatch is not retried"
    );
    let text = err.to_string();
    assert!(text.contains("SignatureDoesNotMatch"), "{text}");
    assert!(text.contains("AccessKeySecret for testid"), "{text}");
    assert!(text.contains("ALIYUN_ACCESS_KEY_ID"), "{text}");
    assert!(!text.contains(canary) && !format!("{err:?}").contains(canary));
}

#[tokio::test]
async fn retries_stop_at_the_attempt_limit_with_the_last_error() {
    let (url, script) = endpoint(vec![(503, "ServiceUnavailable"); 50]).await;
    let err = client(&url, "testsecret", limiter())
        .call(&DescribeRegions::default())
        .await
        .unwrap_err();
    let attempts = RetryPolicy::fast().max_attempts;
    assert_eq!(script.lock().unwrap().seen.len() as u32, attempts);
    assert_eq!(err.api().unwrap().attempts, attempts);
    assert!(
        err.to_string()
            .contains(&format!("after {attempts} attempts")),
        "{err}"
    );
}

/// An endpoint that reads each request and closes the connection without answering.
async fn black_hole() -> (String, Arc<Mutex<u32>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let count = Arc::new(Mutex::new(0));
    let counter = count.clone();
    tokio::spawn(async move {
        loop {
            let (mut sock, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 8192];
            let _ = tokio::io::AsyncReadExt::read(&mut sock, &mut buf).await;
            *counter.lock().unwrap() += 1;
            drop(sock);
        }
    });
    (url, count)
}

#[tokio::test]
async fn a_lost_answer_is_retried_only_for_reads_and_creates_with_a_client_token() {
    let (url, count) = black_hole().await;
    let c = client(&url, "testsecret", limiter());
    let err = c
        .call(&StartInstance {
            instance_id: "i-1".into(),
        })
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::OutcomeUnknown { .. }), "{err}");
    assert!(err.to_string().contains("may have been executed"), "{err}");
    assert_eq!(*count.lock().unwrap(), 1);
    let mut without_token = run_instances();
    without_token.spec.client_token = None;
    let err = c.call(&without_token).await.unwrap_err();
    assert!(matches!(err, ClientError::OutcomeUnknown { .. }), "{err}");
    assert_eq!(*count.lock().unwrap(), 2);
    let err = c.call(&DescribeRegions::default()).await.unwrap_err();
    assert!(matches!(err, ClientError::Transport { .. }), "{err}");
    assert_eq!(*count.lock().unwrap(), 2 + RetryPolicy::fast().max_attempts);
    let err = c.call(&run_instances()).await.unwrap_err();
    assert!(
        matches!(err, ClientError::Transport { .. }),
        "with a ClientToken: {err}"
    );
}

#[test]
fn secrets_never_show_in_debug_of_requests() {
    let mut r = run_instances();
    r.spec.password = Some(Secret::new("CANARY-pw"));
    assert!(!format!("{r:?}").contains("CANARY"));
    assert!(!format!("{:?}", bakerd::client::Action::params(&r)).contains("CANARY"));
}
