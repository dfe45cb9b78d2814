//! Endpoint errors fail fast and name the address: nothing listening (connection refused) is
//! not retried for a minute, and an endpoint without a scheme is refused instead of guessed.

mod common;

use std::process::Output;
use std::time::Instant;

fn spec(dir: &std::path::Path) -> std::path::PathBuf {
    common::write_spec(
        dir,
        "region: cn-hangzhou\nsource_image: { id: ubuntu1404_64_40G_cloudinit_20160427.raw }\n\
         instance: { type: ecs.s2.large }\nprovisioners:\n  - shell: { inline: [\"true\"] }\n\
         image:\n  name: \"endpoint-{{timestamp}}\"\n",
    )
}

fn apply_with_endpoint(endpoint: &str) -> (Output, String) {
    let dir = tempfile::tempdir().unwrap();
    let spec = spec(dir.path());
    let state = dir.path().join("state");
    let out = common::run_bakerd(
        &[
            "apply",
            spec.to_str().unwrap(),
            "--state-dir",
            state.to_str().unwrap(),
        ],
        &[
            ("BAKERD_ECS_ENDPOINT", endpoint),
            ("ALIBABA_CLOUD_ACCESS_KEY_ID", common::ACCESS_KEY_ID),
            ("ALIBABA_CLOUD_ACCESS_KEY_SECRET", common::ACCESS_KEY_SECRET),
        ],
    );
    let text = common::output_text(&out);
    (out, text)
}

#[test]
fn an_endpoint_where_nothing_listens_fails_at_once_naming_the_address() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let endpoint = format!("http://127.0.0.1:{port}");
    let started = Instant::now();
    let (out, text) = apply_with_endpoint(&endpoint);
    eprintln!("refused endpoint: failed after {:?}", started.elapsed());
    assert_eq!(out.status.code(), Some(4), "{text}");
    assert!(text.contains(&endpoint), "the address is named: {text}");
    assert!(
        text.contains("cannot reach the endpoint") && text.contains("refused"),
        "not retried as if transient: {text}"
    );
}

#[test]
fn an_endpoint_without_a_scheme_is_an_error_not_a_guess() {
    let (out, text) = apply_with_endpoint("127.0.0.1:8086");
    assert_eq!(out.status.code(), Some(4), "{text}");
    assert!(
        text.contains("`127.0.0.1:8086` (from BAKERD_ECS_ENDPOINT) has no scheme")
            && text.contains("http://127.0.0.1:8086"),
        "{text}"
    );
}

#[test]
fn an_endpoint_whose_host_name_does_not_resolve_fails_at_once_naming_the_address() {
    // `.invalid` never resolves (RFC 6761): the resolver answers NXDOMAIN at once.
    let endpoint = "http://ecs.bakerd-test.invalid:8080";
    let started = Instant::now();
    let (out, text) = apply_with_endpoint(endpoint);
    eprintln!(
        "unresolvable endpoint: failed after {:?}",
        started.elapsed()
    );
    assert_eq!(out.status.code(), Some(4), "{text}");
    assert!(text.contains(endpoint), "the address is named: {text}");
    assert!(
        text.contains("cannot reach the endpoint"),
        "not retried as if transient: {text}"
    );
}
