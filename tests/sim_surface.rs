//! The simulator's own HTTP surface, attacked as a local user or a web page would: remote listening,
//! `/_sim` without its token or from a browser, secrets on the command line, V3 requests with
//! unsigned headers, nonce replay across a restart, slow and idle connections.

mod common;

use std::time::Duration;

use common::{SimProcess, V1Request, V3Request, ACCESS_KEY_SECRET};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn code(resp: &(u16, Value)) -> (u16, &str) {
    (resp.0, resp.1["Code"].as_str().unwrap_or(""))
}

#[test]
fn listening_beyond_loopback_needs_allow_remote_and_then_warns() {
    let dir = common::fresh_data_dir("remote");
    let data = dir.to_str().unwrap();
    let refused = common::run_bakerd(&["sim", "--listen", "0.0.0.0:0", "--data-dir", data], &[]);
    assert_eq!(refused.status.code(), Some(2), "{refused:?}");
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
    assert!(stderr.contains("--allow-remote"), "{stderr}");

    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_bakerd"))
        .args([
            "sim",
            "--listen",
            "0.0.0.0:0",
            "--allow-remote",
            "--data-dir",
            data,
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut banner = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().unwrap()),
        &mut banner,
    )
    .unwrap();
    assert!(
        banner.starts_with("bakerd-sim listening on http://0.0.0.0:"),
        "{banner}"
    );
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("warning: listening on 0.0.0.0"), "{stderr}");
}

#[tokio::test]
async fn sim_endpoints_refuse_requests_without_the_token_or_from_a_web_page() {
    let sim = SimProcess::start("simtoken");
    let url = format!("{}/_sim/faults", sim.endpoint);
    let token_file = sim.data_dir.join("sim-token");
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&token_file).unwrap().permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);

    let get = |headers: &[(&str, &str)]| {
        let mut req = sim.http.get(&url);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        req.send()
    };
    let none = get(&[]).await.unwrap();
    assert_eq!(none.status(), 401);
    let body = none.text().await.unwrap();
    assert!(body.contains(&token_file.display().to_string()), "{body}");
    assert_eq!(
        get(&[("x-bakerd-sim-token", "guess")])
            .await
            .unwrap()
            .status(),
        403
    );
    let token = sim.sim_token.as_str();
    assert_eq!(
        get(&[("x-bakerd-sim-token", token)])
            .await
            .unwrap()
            .status(),
        200
    );
    for page in [
        ("origin", "http://evil.example"),
        ("sec-fetch-site", "cross-site"),
    ] {
        let r = get(&[("x-bakerd-sim-token", token), page]).await.unwrap();
        assert_eq!(r.status(), 403, "{page:?}");
    }

    // A form POST (what a page can send without asking) changes nothing.
    let form = sim
        .http
        .post(&url)
        .header("x-bakerd-sim-token", token)
        .header("content-type", "text/plain")
        .body(r#"{"throttle_rate": 1.0}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(form.status(), 415);
    assert_eq!(sim.get_json("/_sim/faults").await["throttle_rate"], 0.0);

    // The ECS API refuses a page too, even with a valid signature.
    let signed = V1Request::new("DescribeRegions", &[]).signed_for("GET", ACCESS_KEY_SECRET);
    let from_page = sim
        .http
        .get(format!(
            "{}/?{}",
            sim.endpoint,
            common::encode_query(&signed)
        ))
        .header("origin", "http://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(from_page.status(), 403);
    let body: Value = serde_json::from_str(&from_page.text().await.unwrap()).unwrap();
    assert_eq!(body["Code"], "Forbidden.BrowserRequest");
    assert_eq!(
        sim.send_v1("GET", &signed).await.0,
        200,
        "same request, no Origin"
    );
}

#[tokio::test]
async fn keys_from_a_file_or_the_environment_work_and_stay_out_of_the_simulators_argv() {
    use std::os::unix::fs::PermissionsExt;
    let dir = common::fresh_data_dir("keyfile");
    let file_secret = format!("filesecret{}", uuid::Uuid::new_v4().simple());
    let env_secret = format!("envsecret{}", uuid::Uuid::new_v4().simple());
    let sts = format!("ststoken{}", uuid::Uuid::new_v4().simple());
    let keys = dir.join("keys");
    std::fs::write(&keys, format!("# keys\nfileid:{file_secret}\n")).unwrap();
    std::fs::set_permissions(&keys, std::fs::Permissions::from_mode(0o644)).unwrap();
    let refused = common::run_bakerd(
        &[
            "sim",
            "--data-dir",
            dir.to_str().unwrap(),
            "--access-key-file",
            keys.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(refused.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("chmod 600"), "{stderr}");
    assert!(!stderr.contains(&file_secret), "{stderr}");

    std::fs::set_permissions(&keys, std::fs::Permissions::from_mode(0o600)).unwrap();
    let tokens = dir.join("tokens");
    std::fs::write(&tokens, format!("{sts}\n")).unwrap();
    std::fs::set_permissions(&tokens, std::fs::Permissions::from_mode(0o600)).unwrap();
    let env_keys = format!("envid:{env_secret}");
    let sim = SimProcess::start_with_env(
        &dir,
        &[
            "--access-key-file",
            keys.to_str().unwrap(),
            "--sts-token-file",
            tokens.to_str().unwrap(),
        ],
        &[("BAKERD_SIM_ACCESS_KEYS", &env_keys)],
    );
    let argv = std::fs::read(format!("/proc/{}/cmdline", sim.pid().unwrap())).unwrap();
    let argv = String::from_utf8_lossy(&argv);
    for secret in [&file_secret, &env_secret, &sts] {
        assert!(!argv.contains(secret.as_str()), "{argv}");
    }
    let by_file = V1Request::new("DescribeRegions", &[])
        .set("AccessKeyId", "fileid")
        .set("SecurityToken", &sts);
    assert_eq!(
        sim.send_v1("POST", &by_file.signed(&file_secret)).await.0,
        200
    );
    let by_env = V1Request::new("DescribeRegions", &[]).set("AccessKeyId", "envid");
    assert_eq!(
        sim.send_v1("POST", &by_env.signed(&env_secret)).await.0,
        200
    );
    let default = sim.call("DescribeRegions", &[]).await;
    assert_eq!(code(&default), (404, "InvalidAccessKeyId.NotFound"));
}

#[tokio::test]
async fn a_v3_request_signed_over_host_alone_cannot_be_replayed_with_another_action() {
    let sim = SimProcess::start("v3headers");
    let region = [("RegionId", "cn-hangzhou")];
    let mut captured = V3Request::new(&sim, "DescribeZones", &region, &[]);
    let host_only = captured.authorization(&["host".to_string()], ACCESS_KEY_SECRET);
    let r = captured.send(&sim, &host_only).await;
    assert_eq!(code(&r), (400, "IncompleteSignature"), "{r:?}");
    assert!(r.1["Message"].as_str().unwrap().contains("x-acs-"), "{r:?}");

    // The attack: same Authorization and query, fresh date and nonce, an action that creates.
    captured.set_header("x-acs-action", "CreateSecurityGroup");
    captured.set_header("x-acs-date", &common::timestamp(0));
    captured.set_header(
        "x-acs-signature-nonce",
        &uuid::Uuid::new_v4().simple().to_string(),
    );
    let r = captured.send(&sim, &host_only).await;
    assert_eq!(code(&r), (400, "IncompleteSignature"), "{r:?}");

    // Signing every header works, and then the same swap breaks the signature.
    let mut honest = V3Request::new(&sim, "DescribeZones", &region, &[]);
    let full = honest.authorization(&honest.header_names(), ACCESS_KEY_SECRET);
    assert_eq!(honest.send(&sim, &full).await.0, 200);
    honest.set_header("x-acs-action", "CreateSecurityGroup");
    honest.set_header(
        "x-acs-signature-nonce",
        &uuid::Uuid::new_v4().simple().to_string(),
    );
    assert_eq!(
        code(&honest.send(&sim, &full).await),
        (400, "SignatureDoesNotMatch")
    );
    assert!(
        sim.inventory()
            .await
            .iter()
            .all(|r| r["kind"] != "securitygroup"),
        "no security group may exist: {:?}",
        sim.inventory().await
    );
}

#[tokio::test]
async fn a_captured_request_is_not_replayed_after_the_simulator_is_killed_and_restarted() {
    let sim = SimProcess::start("noncerestart");
    let v1 = V1Request::new("DescribeRegions", &[]).signed(ACCESS_KEY_SECRET);
    assert_eq!(sim.send_v1("POST", &v1).await.0, 200);
    let v3 = V3Request::new(&sim, "DescribeRegions", &[], &[]);
    let v3_auth = v3.authorization(&v3.header_names(), ACCESS_KEY_SECRET);
    assert_eq!(v3.send(&sim, &v3_auth).await.0, 200);

    // SIGKILL: nothing is saved on the way out, so the nonces must already be on disk.
    unsafe { libc::kill(sim.pid().unwrap() as i32, libc::SIGKILL) };
    let dir = sim.data_dir.clone();
    drop(sim);
    let sim = SimProcess::start_in(&dir, &[]);
    assert_eq!(
        code(&sim.send_v1("POST", &v1).await),
        (400, "SignatureNonceUsed")
    );
    // `host` (signed) held the old port: re-sign for the new port with the same nonce and date, so
    // that only the remembered nonce can refuse it.
    let mut again = v3.clone();
    again.set_header("host", &sim.host);
    let auth = again.authorization(&again.header_names(), ACCESS_KEY_SECRET);
    assert_eq!(
        code(&again.send(&sim, &auth).await),
        (400, "SignatureNonceUsed")
    );
    let fresh = V1Request::new("DescribeRegions", &[]).signed(ACCESS_KEY_SECRET);
    assert_eq!(sim.send_v1("POST", &fresh).await.0, 200);
}

/// Reads until the server closes the connection; false if it is still open after `limit`.
async fn closed_by_server(conn: &mut TcpStream, limit: Duration) -> bool {
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        match tokio::time::timeout_at(deadline, conn.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
        }
    }
}

#[tokio::test]
async fn slow_and_idle_connections_are_closed_and_the_connection_cap_holds_the_rest_back() {
    let dir = common::fresh_data_dir("slowloris");
    let sim = SimProcess::start_in(&dir, &["--read-timeout", "2", "--max-connections", "2"]);
    // Two slowloris connections take every slot: headers started, never finished.
    let mut slow = Vec::new();
    for _ in 0..2 {
        let mut c = TcpStream::connect(&sim.host).await.unwrap();
        c.write_all(b"GET /_sim/calls HTTP/1.1\r\nHost: x\r\n")
            .await
            .unwrap();
        slow.push(c);
    }
    // A third client waits in the accept queue, and is answered once a slot is freed.
    let answered = sim.call("DescribeRegions", &[]).await;
    assert_eq!(answered.0, 200, "{answered:?}");
    let mut still_open = 0;
    for c in &mut slow {
        let mut byte = [0u8; 1];
        if matches!(c.try_read(&mut byte), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock) {
            still_open += 1;
        }
    }
    assert!(
        still_open < 2,
        "answered while both slow connections held the only slots"
    );
    for mut c in slow {
        assert!(
            closed_by_server(&mut c, Duration::from_secs(20)).await,
            "slowloris kept open"
        );
    }

    // A kept-alive connection that goes quiet after a request is closed too, and a body that never
    // arrives gets 408 and a close.
    let idle = async {
        let mut idle = TcpStream::connect(&sim.host).await.unwrap();
        let request = format!(
            "GET /_sim/calls HTTP/1.1\r\nHost: {}\r\nX-Bakerd-Sim-Token: {}\r\n\r\n",
            sim.host, sim.sim_token
        );
        idle.write_all(request.as_bytes()).await.unwrap();
        let mut head = [0u8; 12];
        idle.read_exact(&mut head).await.unwrap();
        assert_eq!(&head, b"HTTP/1.1 200");
        assert!(
            closed_by_server(&mut idle, Duration::from_secs(20)).await,
            "idle connection kept open"
        );
    };
    let slow_body = async {
        let mut conn = TcpStream::connect(&sim.host).await.unwrap();
        conn.write_all(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nAction=")
            .await
            .unwrap();
        let mut head = [0u8; 12];
        conn.read_exact(&mut head).await.unwrap();
        assert_eq!(&head, b"HTTP/1.1 408");
        assert!(
            closed_by_server(&mut conn, Duration::from_secs(20)).await,
            "slow body kept open"
        );
    };
    tokio::join!(idle, slow_body);
    assert_eq!(sim.call("DescribeRegions", &[]).await.0, 200);
}
