//! Shared helpers for integration tests: run `bakerd sim` as a child process, sign requests (V1 and
//! V3, via `bakerd::sign`), and read the simulator's `/_sim/*` endpoints.
#![allow(dead_code)]

pub mod instances;
pub mod spec;
#[allow(unused_imports)]
pub use spec::{sim_spec, TEST_CREDENTIALS};

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

pub mod boot;
#[allow(unused_imports)]
pub use boot::{boot_from_image, ok_call, open_network};

/// The documented test key pair the simulator accepts by default.
pub const ACCESS_KEY_ID: &str = "testid";
pub const ACCESS_KEY_SECRET: &str = "testsecret";

/// A fresh simulator data dir under `<crate>/target/test-sim/` (root-owned 0755 path components,
/// as sshd's ChrootDirectory demands; never /tmp).
pub fn fresh_data_dir(name: &str) -> PathBuf {
    use std::os::unix::fs::DirBuilderExt;
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/test-sim");
    let dir = root.join(format!(
        "{name}-{}-{}",
        std::process::id(),
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(&dir)
        .expect("create test data dir");
    dir
}

/// A running `bakerd sim` child; killed when dropped.
pub struct SimProcess {
    child: Option<Child>,
    /// Kept open so the simulator never writes to a closed pipe.
    _stdout: BufReader<ChildStdout>,
    /// `http://127.0.0.1:<port>`.
    pub endpoint: String,
    /// `127.0.0.1:<port>`, the value signed as the V3 `host` header.
    pub host: String,
    pub data_dir: PathBuf,
    /// This run's `/_sim` token (from `<data_dir>/sim-token`), sent as `X-Bakerd-Sim-Token`.
    pub sim_token: String,
    pub http: reqwest::Client,
}

impl SimProcess {
    /// Starts a simulator on a free port with a fresh data dir and the fast profile.
    pub fn start(name: &str) -> Self {
        Self::start_in(&fresh_data_dir(name), &[])
    }

    /// Starts a simulator on `data_dir` with extra command-line options.
    pub fn start_in(data_dir: &Path, extra: &[&str]) -> Self {
        Self::start_with_env(data_dir, extra, &[])
    }

    /// Starts a simulator on `data_dir` with extra options and environment variables.
    pub fn start_with_env(data_dir: &Path, extra: &[&str], env: &[(&str, &str)]) -> Self {
        let log = std::fs::File::create(data_dir.join("sim.log")).expect("sim log");
        let mut child = Command::new(env!("CARGO_BIN_EXE_bakerd"))
            .envs(env.iter().copied())
            .args(["sim", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir)
            .args(if extra.contains(&"--profile") {
                &[][..]
            } else {
                &["--profile", "fast"][..]
            })
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("spawn bakerd sim");
        let mut stdout = BufReader::new(child.stdout.take().expect("stdout piped"));
        let mut line = String::new();
        stdout.read_line(&mut line).expect("read sim banner");
        let endpoint = line
            .trim()
            .strip_prefix("bakerd-sim listening on ")
            .unwrap_or_else(|| {
                panic!(
                    "unexpected first line from bakerd sim: {line:?} (see {}/sim.log)",
                    data_dir.display()
                )
            })
            .to_string();
        let host = endpoint.trim_start_matches("http://").to_string();
        let sim_token = read_sim_token(data_dir);
        SimProcess {
            child: Some(child),
            _stdout: stdout,
            endpoint,
            host,
            data_dir: data_dir.to_path_buf(),
            sim_token,
            // No idle pool: tests block their runtime while the real binary runs (seconds), so a
            // kept connection the simulator closed meanwhile (its read timeout) would be reused
            // unnoticed and fail with `IncompleteMessage`.
            http: reqwest::Client::builder()
                .pool_max_idle_per_host(0)
                .build()
                .expect("HTTP client"),
        }
    }

    /// The simulator's process id (e.g. to SIGKILL it); `None` once stopped.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Sends SIGTERM and waits for a clean exit; returns the data dir for a restart.
    pub fn stop(mut self) -> PathBuf {
        if let Some(mut child) = self.child.take() {
            unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
            let deadline = Instant::now() + Duration::from_secs(20);
            while Instant::now() < deadline {
                if let Ok(Some(status)) = child.try_wait() {
                    assert!(status.success(), "bakerd sim exited with {status}");
                    return self.data_dir.clone();
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            panic!("bakerd sim did not exit within 20 s of SIGTERM");
        }
        self.data_dir.clone()
    }

    /// `GET` a `/_sim/*` path with this run's token.
    pub async fn get_json(&self, path: &str) -> Value {
        self.http
            .get(format!("{}{path}", self.endpoint))
            .header("x-bakerd-sim-token", &self.sim_token)
            .send()
            .await
            .expect("GET")
            .text()
            .await
            .map(|t| serde_json::from_str(&t).expect("JSON"))
            .expect("body")
    }

    /// `GET /_sim/inventory` → the `resources` array.
    pub async fn inventory(&self) -> Vec<Value> {
        self.get_json("/_sim/inventory").await["resources"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// `GET /_sim/calls` → `{"counts": {...}, "calls": [...]}`.
    pub async fn calls(&self) -> Value {
        self.get_json("/_sim/calls").await
    }

    /// `POST /_sim/faults` with a partial fault config.
    pub async fn set_faults(&self, update: Value) -> Value {
        let v: Value = self
            .http
            .post(format!("{}/_sim/faults", self.endpoint))
            .header("x-bakerd-sim-token", &self.sim_token)
            .header("content-type", "application/json")
            .body(update.to_string())
            .send()
            .await
            .expect("POST faults")
            .text()
            .await
            .map(|t| serde_json::from_str(&t).expect("JSON"))
            .expect("body");
        assert!(v.get("error").is_none(), "fault update refused: {v}");
        v
    }

    /// A V1-signed POST (params in the query string, like the Python SDKs), fresh nonce and time.
    pub async fn call(&self, action: &str, params: &[(&str, &str)]) -> (u16, Value) {
        let req = V1Request::new(action, params);
        self.send_v1("POST", &req.signed(ACCESS_KEY_SECRET)).await
    }

    /// Like [`SimProcess::call`], to the VPC API (`Version=2016-04-28`), as bakerd and the VPC
    /// SDKs call VPC, vSwitch, EIP and their tag actions.
    pub async fn call_vpc(&self, action: &str, params: &[(&str, &str)]) -> (u16, Value) {
        let req = V1Request::new(action, params).set("Version", "2016-04-28");
        self.send_v1("POST", &req.signed(ACCESS_KEY_SECRET)).await
    }

    /// Sends already-signed V1 params (including `Signature`) in the query string.
    pub async fn send_v1(&self, method: &str, params: &[(String, String)]) -> (u16, Value) {
        let query = encode_query(params);
        let url = format!("{}/?{query}", self.endpoint);
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        // A closed connection without an answer (injected fault) reads as status 0.
        let Ok(resp) = self.http.request(method, url).send().await else {
            return (0, Value::Null);
        };
        status_and_json(resp).await
    }

    /// Polls `check` until it returns `Some`, every 100 ms, at most `timeout`.
    pub async fn wait_for<T, F, Fut>(&self, what: &str, timeout: Duration, mut check: F) -> T
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Option<T>>,
    {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(v) = check().await {
                return v;
            }
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// The `/_sim` token a simulator wrote to its data dir before printing its banner.
pub fn read_sim_token(data_dir: &Path) -> String {
    let path = data_dir.join("sim-token");
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
        .trim()
        .to_string()
}

impl Drop for SimProcess {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// `name=value&...` with the Alibaba percent-encoding.
pub fn encode_query(params: &[(String, String)]) -> String {
    params
        .iter()
        .map(|(k, v)| {
            format!(
                "{}={}",
                bakerd::sign::percent_encode(k),
                bakerd::sign::percent_encode(v)
            )
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// Current UTC time as `yyyy-MM-ddTHH:mm:ssZ`, shifted by `offset_secs`.
pub fn timestamp(offset_secs: i64) -> String {
    let t = time::OffsetDateTime::now_utc() + time::Duration::seconds(offset_secs);
    t.format(&time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second]Z"
    ))
    .unwrap()
}

/// The parameters of a V1 request before signing.
#[derive(Debug, Clone)]
pub struct V1Request {
    pub params: Vec<(String, String)>,
}

impl V1Request {
    /// Common parameters (test key, fresh nonce, current time, JSON) plus the action's own.
    pub fn new(action: &str, params: &[(&str, &str)]) -> Self {
        let mut all: Vec<(String, String)> = vec![
            ("AccessKeyId".into(), ACCESS_KEY_ID.into()),
            ("Action".into(), action.into()),
            ("Format".into(), "JSON".into()),
            ("SignatureMethod".into(), "HMAC-SHA1".into()),
            ("SignatureNonce".into(), uuid::Uuid::new_v4().to_string()),
            ("SignatureVersion".into(), "1.0".into()),
            ("Timestamp".into(), timestamp(0)),
            ("Version".into(), "2014-05-26".into()),
        ];
        all.extend(params.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        V1Request { params: all }
    }

    /// Replaces (or adds) a parameter.
    pub fn set(mut self, name: &str, value: &str) -> Self {
        self.params.retain(|(k, _)| k != name);
        self.params.push((name.into(), value.into()));
        self
    }

    /// The params plus `Signature`, signed for POST with `secret`.
    pub fn signed(&self, secret: &str) -> Vec<(String, String)> {
        self.signed_for("POST", secret)
    }

    pub fn signed_for(&self, method: &str, secret: &str) -> Vec<(String, String)> {
        let (_, sig) = bakerd::sign::v1_sign(method, &self.params, secret);
        let mut out = self.params.clone();
        out.push(("Signature".into(), sig));
        out
    }
}

/// Sends a V3-signed POST (action params in the query string, empty body, like the Tea SDKs),
/// signing every header.
pub async fn call_v3(
    sim: &SimProcess,
    action: &str,
    params: &[(&str, &str)],
    secret: &str,
    extra_headers: &[(&str, &str)],
) -> (u16, Value) {
    let req = V3Request::new(sim, action, params, extra_headers);
    let signed = req.header_names();
    req.send(sim, &req.authorization(&signed, secret)).await
}

/// A V3 request before signing: query parameters and headers (`host` included, sent by the client).
#[derive(Debug, Clone)]
pub struct V3Request {
    pub query: Vec<(String, String)>,
    pub headers: Vec<(String, String)>,
}

impl V3Request {
    /// The Tea SDK's common headers (fresh date and nonce) plus `extra_headers`.
    pub fn new(
        sim: &SimProcess,
        action: &str,
        params: &[(&str, &str)],
        extra_headers: &[(&str, &str)],
    ) -> Self {
        let mut headers: Vec<(String, String)> = vec![
            ("host".into(), sim.host.clone()),
            ("x-acs-action".into(), action.into()),
            ("x-acs-version".into(), "2014-05-26".into()),
            ("x-acs-date".into(), timestamp(0)),
            (
                "x-acs-signature-nonce".into(),
                uuid::Uuid::new_v4().simple().to_string(),
            ),
            (
                "x-acs-content-sha256".into(),
                bakerd::sign::EMPTY_BODY_SHA256.into(),
            ),
        ];
        headers.extend(
            extra_headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string())),
        );
        V3Request {
            query: params
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            headers,
        }
    }

    /// Every header name (what a well-behaved client signs).
    pub fn header_names(&self) -> Vec<String> {
        self.headers.iter().map(|(k, _)| k.clone()).collect()
    }

    /// Replaces a header's value.
    pub fn set_header(&mut self, name: &str, value: &str) {
        for (k, v) in &mut self.headers {
            if k == name {
                *v = value.to_string();
            }
        }
    }

    /// The `Authorization` header value signing `signed` (a subset of the headers) with `secret`.
    pub fn authorization(&self, signed: &[String], secret: &str) -> String {
        let cr = bakerd::sign::v3_canonical_request(&bakerd::sign::V3Request {
            method: "POST",
            path: "/",
            query: &self.query,
            headers: &self.headers,
            signed_headers: signed,
            payload_hash: bakerd::sign::EMPTY_BODY_SHA256,
        });
        let sig = bakerd::sign::v3_signature(secret, &bakerd::sign::v3_string_to_sign(&cr));
        bakerd::sign::v3_authorization(ACCESS_KEY_ID, signed, &sig)
    }

    /// Sends the request with `authorization`, as it is now.
    pub async fn send(&self, sim: &SimProcess, authorization: &str) -> (u16, Value) {
        let mut req = sim
            .http
            .post(format!("{}/?{}", sim.endpoint, encode_query(&self.query)))
            .header("authorization", authorization);
        for (k, v) in self.headers.iter().filter(|(k, _)| k != "host") {
            req = req.header(k.as_str(), v.as_str());
        }
        status_and_json(req.send().await.expect("send V3")).await
    }
}

/// Asserts that `resp` is the error answer `status` / `code`.
pub fn refused(resp: &(u16, Value), status: u16, code: &str) {
    assert_eq!(
        (resp.0, resp.1["Code"].as_str()),
        (status, Some(code)),
        "{}",
        resp.1
    );
}

/// The status and the JSON body (`Null` when the body is not JSON).
async fn status_and_json(resp: reqwest::Response) -> (u16, Value) {
    let status = resp.status().as_u16();
    let body = resp.text().await.ok();
    (
        status,
        body.and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or(Value::Null),
    )
}

/// Runs the real `bakerd` binary with `args` and extra environment `env`; waits for it.
pub fn run_bakerd(args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_bakerd"))
        .args(args)
        .envs(env.iter().copied())
        .env_remove("BAKERD_STATE_DIR")
        .stdin(Stdio::null())
        .output()
        .expect("run bakerd")
}

/// stdout then stderr of a finished command, as text (what a user sees in a terminal).
pub fn output_text(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Runs the real `bakerd` against `sim` with the test credentials and `--state-dir state`;
/// returns the output and its text.
pub fn bakerd_on_sim(
    sim: &SimProcess,
    state: &Path,
    args: &[&str],
) -> (std::process::Output, String) {
    let mut all = args.to_vec();
    all.extend(["--state-dir", state.to_str().expect("utf-8 state path")]);
    let out = run_bakerd(
        &all,
        &[
            ("BAKERD_ECS_ENDPOINT", sim.endpoint.as_str()),
            ("ALIBABA_CLOUD_ACCESS_KEY_ID", ACCESS_KEY_ID),
            ("ALIBABA_CLOUD_ACCESS_KEY_SECRET", ACCESS_KEY_SECRET),
        ],
    );
    let text = output_text(&out);
    (out, text)
}

/// Starts the real `bakerd` binary with `args` and `env`, stdout piped (stderr inherited).
pub fn spawn_bakerd(args: &[&str], env: &[(&str, &str)]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_bakerd"))
        .args(args)
        .envs(env.iter().copied())
        .env_remove("BAKERD_STATE_DIR")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn bakerd")
}

/// Writes `yaml` to `<dir>/spec.yaml` and returns its path.
pub fn write_spec(dir: &Path, yaml: &str) -> PathBuf {
    let path = dir.join("spec.yaml");
    std::fs::write(&path, yaml).expect("write spec");
    path
}

/// A fresh ed25519 client key pair made by `ssh-keygen`; returns (private key path, public line).
pub fn ssh_keygen(dir: &Path, name: &str) -> (PathBuf, String) {
    let path = dir.join(name);
    let status = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&path)
        .stdout(Stdio::null())
        .status()
        .expect("run ssh-keygen");
    assert!(status.success(), "ssh-keygen failed");
    let public = std::fs::read_to_string(path.with_extension("pub")).expect("read public key");
    (path, public.trim().to_string())
}

/// OpenSSH client options of every test connection to an instance: batch mode, the given key
/// only, no host key checks (each instance has fresh host keys), quiet.
pub const SSH_TEST_OPTIONS: [&str; 10] = [
    "-o",
    "BatchMode=yes",
    "-o",
    "StrictHostKeyChecking=no",
    "-o",
    "UserKnownHostsFile=/dev/null",
    "-o",
    "IdentitiesOnly=yes",
    "-o",
    "LogLevel=ERROR",
];

/// Runs `command` as root on `ip` with OpenSSH's `ssh` (no host key checking, batch mode).
pub fn ssh_run(ip: &str, key: &Path, command: &str) -> std::process::Output {
    Command::new("ssh")
        .args(["-F", "/dev/null", "-i"])
        .arg(key)
        .args(SSH_TEST_OPTIONS)
        .args(["-o", "ConnectTimeout=5"])
        .arg(format!("root@{ip}"))
        .arg(command)
        .stdin(Stdio::null())
        .output()
        .expect("run ssh")
}

/// Reads `path` on `ip` over SSH; panics with ssh's stderr if that fails.
pub fn ssh_read(ip: &str, key: &Path, path: &str) -> String {
    let out = ssh_run(ip, key, &format!("cat {path}"));
    assert!(
        out.status.success(),
        "ssh {ip} cat {path} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Inventory entries tagged `bakerd:build-id=<build>`.
pub fn resources_of_build(inventory: &[Value], build: &str) -> Vec<Value> {
    inventory
        .iter()
        .filter(|r| r["tags"]["bakerd:build-id"] == build)
        .cloned()
        .collect()
}

/// Inventory entries tagged with `build` that are not deleted, as `kind id`.
pub fn live_resources_of_build(inventory: &[Value], build: &str) -> Vec<String> {
    resources_of_build(inventory, build)
        .iter()
        .filter(|r| r["deleted"].is_null())
        .map(|r| {
            format!(
                "{} {}",
                r["kind"].as_str().unwrap_or("?"),
                r["id"].as_str().unwrap_or("?")
            )
        })
        .collect()
}

/// After an SDK lifecycle script (tests/python, tests/node) printed `summary` (`{instance, snapshot,
/// image, security_group}`): each of those is deleted in the simulator, every call was signed with
/// `signature` (`v1`/`v3`), none failed except DeleteSecurityGroup refused while the deleted
/// instance was being released, and each creating call happened exactly once.
pub async fn assert_sdk_lifecycle_clean(sim: &SimProcess, summary: &Value, signature: &str) {
    let inventory = sim.inventory().await;
    for (field, kind) in [
        ("instance", "instance"),
        ("snapshot", "snapshot"),
        ("image", "image"),
        ("security_group", "securitygroup"),
    ] {
        let id = summary[field].as_str().unwrap();
        let r = inventory
            .iter()
            .find(|r| r["id"] == id)
            .unwrap_or_else(|| panic!("{id} not in inventory"));
        assert_eq!(
            (r["kind"].as_str(), r["status"].as_str()),
            (Some(kind), Some("Deleted")),
            "{r}"
        );
    }
    let calls = sim.calls().await;
    let log = calls["calls"].as_array().unwrap();
    assert!(
        log.iter().all(|c| c["error_code"].is_null()
            || (c["action"] == "DeleteSecurityGroup" && c["error_code"] == "DependencyViolation")),
        "some SDK call failed: {log:?}"
    );
    assert!(
        log.iter().all(|c| c["signature_version"] == signature),
        "expected only {signature} signatures: {log:?}"
    );
    for action in [
        "ImportKeyPair",
        "CreateSecurityGroup",
        "AuthorizeSecurityGroup",
        "CreateInstance",
        "StartInstance",
        "CreateSnapshot",
        "CreateImage",
        "DeleteInstance",
        "DeleteImage",
        "DeleteSnapshot",
    ] {
        assert_eq!(calls["counts"][action], 1, "{action} count");
    }
}

/// A security group allowing tcp/22, created beforehand as templates that name one require.
pub async fn ssh_security_group(sim: &SimProcess, region: &str) -> String {
    let (status, body) = sim
        .call("CreateSecurityGroup", &[("RegionId", region)])
        .await;
    assert_eq!(status, 200, "{body}");
    let sg = body["SecurityGroupId"].as_str().unwrap().to_string();
    let (status, body) = sim
        .call(
            "AuthorizeSecurityGroup",
            &[
                ("RegionId", region),
                ("SecurityGroupId", &sg),
                ("IpProtocol", "tcp"),
                ("PortRange", "22/22"),
                ("SourceCidrIp", "0.0.0.0/0"),
            ],
        )
        .await;
    assert_eq!(status, 200, "{body}");
    sg
}

/// Imports `public_key`, runs an instance from `image` and returns its private IP once Running.
pub async fn boot_instance(
    sim: &SimProcess,
    region: &str,
    image: &str,
    sg: &str,
    public_key: &str,
) -> String {
    let (status, body) = sim
        .call(
            "ImportKeyPair",
            &[
                ("RegionId", region),
                ("KeyPairName", "seed-check"),
                ("PublicKeyBody", public_key),
            ],
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = sim
        .call(
            "RunInstances",
            &[
                ("RegionId", region),
                ("ImageId", image),
                ("InstanceType", "ecs.s2.large"),
                ("SecurityGroupId", sg),
                ("KeyPairName", "seed-check"),
            ],
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let id = body["InstanceIdSets"]["InstanceIdSet"][0]
        .as_str()
        .unwrap()
        .to_string();
    let ids = format!("[\"{id}\"]");
    let started = Instant::now();
    loop {
        let (_, body) = sim
            .call(
                "DescribeInstances",
                &[("RegionId", region), ("InstanceIds", &ids)],
            )
            .await;
        let instance = &body["Instances"]["Instance"][0];
        if instance["Status"] == "Running" {
            let ip = &instance["VpcAttributes"]["PrivateIpAddress"]["IpAddress"][0];
            let ip = ip
                .as_str()
                .or(instance["InnerIpAddress"]["IpAddress"][0].as_str());
            return ip.expect("a private IP").to_string();
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "instance {id} never ran"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Reads a file over SSH with OpenSSH's client, retrying while the instance boots.
pub fn ssh_read_retrying(key: &Path, ip: &str, path: &str, timeout: Duration) -> String {
    let started = Instant::now();
    loop {
        let out = ssh_run(ip, key, &format!("cat {path}"));
        if out.status.success() {
            return String::from_utf8_lossy(&out.stdout).into_owned();
        }
        assert!(
            started.elapsed() < timeout,
            "ssh root@{ip} cat {path}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// The Python with the official Alibaba Cloud SDKs: `BAKERD_TEST_PYTHON`, or the `target/pyenv`
/// that `scripts/install-deps.sh` creates.
pub fn python() -> String {
    std::env::var("BAKERD_TEST_PYTHON").unwrap_or_else(|_| {
        let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/pyenv/bin/python");
        assert!(
            venv.exists(),
            "set BAKERD_TEST_PYTHON or run scripts/install-deps.sh (creates target/pyenv)"
        );
        venv.display().to_string()
    })
}

/// Runs `tests/python/<script>` against `sim` in cn-hangzhou; asserts it succeeded and returns
/// the one JSON line it printed.
pub async fn python_summary(sim: &SimProcess, script: &str) -> Value {
    let out = run_python_script(sim, script, "cn-hangzhou").await;
    assert!(
        out.status.success(),
        "{script} failed:\nstdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(out.stdout.trim_ascii()).expect("summary JSON line")
}

/// Runs `tests/python/<script> <host:port> <region>` against `sim` off the async runtime.
pub async fn run_python_script(
    sim: &SimProcess,
    script: &str,
    region: &str,
) -> std::process::Output {
    let script = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/python")
        .join(script);
    let (host, region) = (sim.host.clone(), region.to_string());
    tokio::task::spawn_blocking(move || {
        Command::new(python())
            // sim_common.py is imported by the scripts: no __pycache__ in the source tree.
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .arg(&script)
            .arg(host)
            .arg(region)
            .output()
            .expect("run python")
    })
    .await
    .expect("python runner")
}
