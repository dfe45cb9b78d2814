//! Differential test: the client's signed requests against Alibaba Cloud's own signers
//! (`aliyunsdkcore` RPC composer for V1, `alibabacloud_tea_openapi` for V3), over a few hundred
//! generated parameter sets. The Python interpreter comes from `BAKERD_TEST_PYTHON` (or
//! `target/pyenv/bin/python`), prepared with:
//! `python3 -m venv target/pyenv && target/pyenv/bin/pip install aliyun-python-sdk-core alibabacloud_ecs20140526`

use bakerd::client::credentials::{CredentialSource, Credentials, Secret};
use bakerd::client::transport::{sign_v1, sign_v3, SignInput, SignedRequest};
use bakerd::sign::EMPTY_BODY_SHA256;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};

const CASES: usize = 300;

fn python() -> PathBuf {
    if let Ok(p) = std::env::var("BAKERD_TEST_PYTHON") {
        return PathBuf::from(p);
    }
    let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/pyenv/bin/python");
    assert!(
        venv.exists(),
        "set BAKERD_TEST_PYTHON or create the venv: python3 -m venv target/pyenv && \
         target/pyenv/bin/pip install aliyun-python-sdk-core aliyun-python-sdk-ecs alibabacloud_ecs20140526"
    );
    venv
}

/// Values that stress the encoding rules: unicode, spaces, `*`, `~`, `/`, `=`, `&`, `+`, `%`,
/// empty and long values.
fn value(rng: &mut StdRng) -> String {
    const PIECES: &[&str] = &[
        "a", "Z", "0", " ", "*", "~", "/", "=", "&", "+", "%", "%20", "中文", "ü", "😀", "-", "_",
        ".", "\"", "[", "]", ":", "?", "#", "'", "!", "(", ")", ",", ";", "@", "$", "\\", "\t",
    ];
    match rng.gen_range(0..10) {
        0 => String::new(),
        1 => "x".repeat(rng.gen_range(500..3000)),
        _ => (0..rng.gen_range(1..20))
            .map(|_| PIECES[rng.gen_range(0..PIECES.len())])
            .collect(),
    }
}

/// Parameter names as the API has them: letters, digits and dots (`Tag.3.Key`).
fn name(rng: &mut StdRng) -> String {
    const NAMES: &[&str] = &[
        "RegionId",
        "InstanceName",
        "Description",
        "Tag.1.Key",
        "Tag.1.Value",
        "Tag.10.Key",
        "ImageName",
        "UserData",
        "SystemDisk.Category",
        "Permissions.2.PortRange",
        "a",
        "Z",
    ];
    let base = NAMES[rng.gen_range(0..NAMES.len())];
    format!("{base}{}", rng.gen_range(0..5))
}

fn params(rng: &mut StdRng) -> Vec<(String, String)> {
    let mut seen = std::collections::HashSet::new();
    (0..rng.gen_range(0..12))
        .map(|_| (name(rng), value(rng)))
        .filter(|(k, _)| seen.insert(k.clone()))
        .collect()
}

fn credentials(rng: &mut StdRng) -> Credentials {
    Credentials {
        access_key_id: format!("LTAI{}", rng.gen::<u32>()),
        access_key_secret: Secret::new(value(rng)),
        security_token: rng.gen_bool(0.3).then(|| Secret::new(value(rng))),
        source: CredentialSource::Explicit,
    }
}

fn pairs(v: &[(String, String)]) -> Value {
    Value::Array(v.iter().map(|(k, v)| json!([k, v])).collect())
}

fn oracle_case(style: &str, req: &SignedRequest, creds: &Credentials) -> Value {
    let secret = creds.access_key_secret.expose();
    if style == "v1" {
        let signed: Vec<_> = req
            .query
            .iter()
            .filter(|(k, _)| k != "Signature")
            .cloned()
            .collect();
        json!({"style": "v1", "method": "POST", "params": pairs(&signed), "secret": secret})
    } else {
        let headers: Vec<_> = req
            .headers
            .iter()
            .filter(|(k, _)| k != "authorization")
            .cloned()
            .collect();
        json!({"style": "v3", "method": "POST", "query": pairs(&req.query), "headers": pairs(&headers),
               "payload": EMPTY_BODY_SHA256, "ak": creds.access_key_id, "secret": secret})
    }
}

fn check(style: &str, req: &SignedRequest, answer: &Value, case: usize) {
    if style == "v1" {
        assert_eq!(
            answer["string_to_sign"],
            req.string_to_sign.as_str(),
            "case {case}: string to sign"
        );
        let ours = &req.query.iter().find(|(k, _)| k == "Signature").unwrap().1;
        assert_eq!(
            answer["signature"],
            ours.as_str(),
            "case {case}: V1 signature"
        );
    } else {
        let ours = &req
            .headers
            .iter()
            .find(|(k, _)| k == "authorization")
            .unwrap()
            .1;
        assert_eq!(
            answer["authorization"],
            ours.as_str(),
            "case {case}: V3 authorization"
        );
    }
}

#[test]
fn client_signatures_match_the_official_python_signers_over_generated_cases() {
    let mut child = Command::new(python())
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/python/sign_oracle.py"
        ))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the Python signature oracle");
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut rng = StdRng::seed_from_u64(20240607);
    let mut compared = [0usize; 2];
    for case in 0..CASES {
        let (creds, params) = (credentials(&mut rng), params(&mut rng));
        let (nonce, timestamp) = (
            format!("{:032x}", rng.gen::<u128>()),
            "2026-01-02T03:04:05Z",
        );
        let host = format!("127.0.0.1:{}", rng.gen_range(1024..65535));
        let input = SignInput {
            action: "RunInstances",
            version: "2014-05-26",
            params: &params,
            credentials: &creds,
            host: &host,
            nonce: &nonce,
            timestamp,
        };
        let style = if case % 2 == 0 { "v1" } else { "v3" };
        let req = if style == "v1" {
            sign_v1(&input)
        } else {
            sign_v3(&input)
        };
        writeln!(stdin, "{}", oracle_case(style, &req, &creds)).unwrap();
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        let answer: Value = serde_json::from_str(&line).expect("oracle answered JSON");
        check(style, &req, &answer, case);
        compared[case % 2] += 1;
    }
    drop(stdin);
    assert!(child.wait().unwrap().success());
    println!(
        "compared {} V1 and {} V3 signatures with the official signers",
        compared[0], compared[1]
    );
}
