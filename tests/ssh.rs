//! SSH against a real OpenSSH sshd that each test starts on its own loopback address, plus the key
//! store whose keys those tests authenticate with.

use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::Duration;

use bakerd::reconciler::keys::{BuildKey, KeyStore};
use bakerd::reconciler::ssh::{
    connect_with_retry, DisconnectOutcome, HostKey, RemoteExit, SshError, SshSession, Stream,
};
use bakerd::reconciler::state::BuildId;
use rand::Rng;
use sha2::{Digest, Sha256};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// A private sshd: its own host key, config, authorized key and log in a temp dir.
struct Sshd {
    child: Option<Child>,
    dir: tempfile::TempDir,
    addr: SocketAddr,
    host_key: HostKey,
}

impl Sshd {
    /// Prepares config and keys for a free loopback address; does not start sshd yet.
    fn prepare(authorized: &BuildKey) -> Sshd {
        let dir = tempfile::tempdir().unwrap();
        let addr = free_loopback_addr();
        let host_key_path = dir.path().join("host_ed25519");
        let status = Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-f"])
            .arg(&host_key_path)
            .status()
            .unwrap();
        assert!(status.success());
        let public = std::fs::read_to_string(host_key_path.with_extension("pub")).unwrap();
        let authorized_keys = dir.path().join("authorized_keys");
        std::fs::write(
            &authorized_keys,
            format!("{}\n", authorized.public_openssh()),
        )
        .unwrap();
        let config = format!(
            "ListenAddress {addr}\nHostKey {}\nAuthorizedKeysFile {}\nPidFile {}\nUsePAM no\n\
             PasswordAuthentication no\nKbdInteractiveAuthentication no\n\
             PermitRootLogin prohibit-password\nStrictModes no\nLogLevel VERBOSE\n",
            host_key_path.display(),
            authorized_keys.display(),
            dir.path().join("sshd.pid").display(),
        );
        std::fs::write(dir.path().join("sshd_config"), config).unwrap();
        std::fs::create_dir_all("/run/sshd").unwrap();
        Sshd {
            child: None,
            dir,
            addr,
            host_key: HostKey::parse_openssh(&public).unwrap(),
        }
    }

    fn start(authorized: &BuildKey) -> Sshd {
        let mut sshd = Sshd::prepare(authorized);
        sshd.launch();
        sshd
    }

    fn launch(&mut self) {
        let child = Command::new("/usr/sbin/sshd")
            .arg("-D")
            .arg("-f")
            .arg(self.dir.path().join("sshd_config"))
            .arg("-E")
            .arg(self.log_path())
            .spawn()
            .unwrap();
        self.child = Some(child);
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("sshd.log")
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A random 127.x.y.z address with a port that was free a moment ago.
fn free_loopback_addr() -> SocketAddr {
    let mut rng = rand::thread_rng();
    let ip = Ipv4Addr::new(
        127,
        rng.gen_range(1..=254),
        rng.gen(),
        rng.gen_range(1..=254),
    );
    let listener = TcpListener::bind((ip, 0)).unwrap();
    listener.local_addr().unwrap()
}

async fn connect(sshd: &Sshd, key: &BuildKey, pinned: Option<&HostKey>) -> SshSession {
    let (session, _) = connect_with_retry(sshd.addr, "root", key, pinned, CONNECT_TIMEOUT)
        .await
        .unwrap();
    session
}

fn sha256_file(path: &Path) -> String {
    hex::encode(Sha256::digest(std::fs::read(path).unwrap()))
}

#[tokio::test]
async fn first_contact_returns_the_servers_host_key_and_exit_3_comes_back_with_the_tail() {
    let key = BuildKey::generate().unwrap();
    let sshd = Sshd::start(&key);
    let (mut ssh, host_key) = connect_with_retry(sshd.addr, "root", &key, None, CONNECT_TIMEOUT)
        .await
        .unwrap();
    assert!(host_key.same_key(&sshd.host_key));
    assert_eq!(host_key.fingerprint, sshd.host_key.fingerprint);

    let mut lines = Vec::new();
    let command = "echo one; echo warn >&2; echo two; printf 'no newline'; exit 3";
    let out = ssh
        .exec(command, &[], |stream, line| {
            lines.push((stream, line.to_string()))
        })
        .await
        .unwrap();
    assert_eq!(out.status, RemoteExit::Code(3));
    let stdout: Vec<&str> = lines
        .iter()
        .filter(|(s, _)| *s == Stream::Stdout)
        .map(|(_, l)| l.as_str())
        .collect();
    assert_eq!(stdout, ["one", "two", "no newline"]);
    assert!(lines.contains(&(Stream::Stderr, "warn".to_string())));
    assert!(out.tail.lines().contains(&"two".to_string()));
    let message = out
        .check(sshd.addr, "provisioner 2")
        .unwrap_err()
        .to_string();
    assert!(message.contains("exit code 3"), "{message}");
    assert!(message.contains("no newline"), "{message}");
    assert!(message.contains(&sshd.addr.to_string()), "{message}");
}

#[tokio::test]
async fn output_lines_reach_the_callback_while_the_command_still_runs() {
    let key = BuildKey::generate().unwrap();
    let sshd = Sshd::start(&key);
    let mut ssh = connect(&sshd, &key, None).await;
    // The command waits for a file that only the callback creates, after seeing the first line:
    // if output were delivered at the end, this would never finish.
    let marker = sshd.path("go");
    let command = format!(
        "echo first; while [ ! -e '{}' ]; do sleep 0.1; done; echo second",
        marker.display()
    );
    let mut seen = Vec::new();
    let run = ssh.exec(&command, &[], |_, line| {
        if line == "first" {
            std::fs::write(&marker, b"").unwrap();
        }
        seen.push(line.to_string());
    });
    let out = tokio::time::timeout(Duration::from_secs(60), run)
        .await
        .expect("output was not streamed live")
        .unwrap();
    assert!(out.success());
    assert_eq!(seen, ["first", "second"]);
}

#[tokio::test]
async fn environment_variables_reach_the_command_unchanged() {
    let key = BuildKey::generate().unwrap();
    let sshd = Sshd::start(&key);
    let mut ssh = connect(&sshd, &key, None).await;
    let tricky = r#"it's "quoted" $HOME `id` \n ; exit 9"#;
    let env = vec![
        ("TRICKY".to_string(), tricky.to_string()),
        ("EMPTY".to_string(), String::new()),
    ];
    let mut lines = Vec::new();
    let out = ssh
        .exec(
            r#"printf '%s|%s\n' "$TRICKY" "${EMPTY-unset}""#,
            &env,
            |_, l| lines.push(l.to_string()),
        )
        .await
        .unwrap();
    assert!(out.success(), "{:?}", out);
    assert_eq!(lines, [format!("{tricky}|")]);
}

#[tokio::test]
async fn a_multi_megabyte_file_uploads_byte_for_byte_with_its_mode() {
    let key = BuildKey::generate().unwrap();
    let sshd = Sshd::start(&key);
    let mut ssh = connect(&sshd, &key, None).await;
    let local = sshd.path("local.bin");
    let mut data = vec![0u8; 3 * 1024 * 1024 + 17];
    rand::thread_rng().fill(&mut data[..]);
    std::fs::write(&local, &data).unwrap();
    let remote = sshd.path("remote/sub dir/it's.bin");
    let sent = ssh
        .upload_file(&local, remote.to_str().unwrap(), 0o640)
        .await
        .unwrap();
    assert_eq!(sent, data.len() as u64);
    assert_eq!(sha256_file(&remote), sha256_file(&local));
    let mode = std::fs::metadata(&remote).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o640);
    assert!(!remote.with_extension("bin.bakerd-upload").exists());
}

#[tokio::test]
async fn a_directory_tree_uploads_with_nested_dirs_empty_dirs_and_modes() {
    let key = BuildKey::generate().unwrap();
    let sshd = Sshd::start(&key);
    let mut ssh = connect(&sshd, &key, None).await;
    let local = sshd.path("tree");
    std::fs::create_dir_all(local.join("a/b/c")).unwrap();
    std::fs::create_dir_all(local.join("empty")).unwrap();
    std::fs::write(local.join("top.txt"), "top\n").unwrap();
    std::fs::write(local.join("a/b/c/deep file's.txt"), "deep\n").unwrap();
    std::fs::write(local.join("a/run.sh"), "#!/bin/sh\necho hi\n").unwrap();
    std::fs::set_permissions(
        local.join("a/run.sh"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    let remote = sshd.path("uploaded/tree");
    let summary = ssh
        .upload_dir(&local, remote.to_str().unwrap())
        .await
        .unwrap();
    assert_eq!(summary.files, 3);
    assert_eq!(summary.dirs, 5, "root, a, a/b, a/b/c, empty");
    assert_eq!(
        std::fs::read_to_string(remote.join("a/b/c/deep file's.txt")).unwrap(),
        "deep\n"
    );
    assert_eq!(
        std::fs::read_to_string(remote.join("top.txt")).unwrap(),
        "top\n"
    );
    assert!(remote.join("empty").is_dir());
    let mode = std::fs::metadata(remote.join("a/run.sh"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o755);
}

#[tokio::test]
async fn a_changed_host_key_is_refused_before_authentication_or_any_command() {
    let key = BuildKey::generate().unwrap();
    let sshd = Sshd::start(&key);
    let other = BuildKey::generate().unwrap();
    let wrong_pin = HostKey::parse_openssh(&other.public_openssh()).unwrap();
    let marker = sshd.path("command-ran");
    let result =
        connect_with_retry(sshd.addr, "root", &key, Some(&wrong_pin), CONNECT_TIMEOUT).await;
    if let Ok((mut ssh, _)) = result {
        let _ = ssh
            .exec(&format!("touch '{}'", marker.display()), &[], |_, _| {})
            .await;
        panic!("connected despite a different host key");
    }
    let err = result.unwrap_err();
    let message = err.to_string();
    match &err {
        SshError::HostKeyMismatch { expected, got, .. } => {
            assert_eq!(expected, &wrong_pin.fingerprint);
            assert_eq!(got, &sshd.host_key.fingerprint);
        }
        other => panic!("expected HostKeyMismatch, got {other:?}"),
    }
    assert!(message.contains(&sshd.addr.to_string()), "{message}");
    assert!(!marker.exists());
    // sshd saw one connection (no retries) and no authentication.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let log = sshd.log();
    assert_eq!(log.matches("Connection from").count(), 1, "{log}");
    assert!(!log.contains("Accepted"), "{log}");

    // The right pin connects: the refusal above was about the key, not the server.
    let mut ssh = connect(&sshd, &key, Some(&sshd.host_key)).await;
    assert!(ssh.exec("true", &[], |_, _| {}).await.unwrap().success());
}

#[tokio::test]
async fn connect_with_retry_waits_for_an_sshd_that_starts_later() {
    let key = BuildKey::generate().unwrap();
    let mut sshd = Sshd::prepare(&key);
    let connecting = connect_with_retry(sshd.addr, "root", &key, None, CONNECT_TIMEOUT);
    let starting = async {
        tokio::time::sleep(Duration::from_secs(3)).await;
        sshd.launch();
    };
    let (connected, ()) = tokio::join!(connecting, starting);
    let (mut ssh, host_key) = connected.unwrap();
    assert!(host_key.same_key(&sshd.host_key));
    assert!(ssh.exec("true", &[], |_, _| {}).await.unwrap().success());
}

#[tokio::test]
async fn connect_timeout_names_the_address_and_likely_causes() {
    let key = BuildKey::generate().unwrap();
    let addr = free_loopback_addr();
    let err = connect_with_retry(addr, "root", &key, None, Duration::from_secs(2))
        .await
        .unwrap_err();
    let message = err.to_string();
    assert!(matches!(err, SshError::ConnectTimeout { .. }), "{message}");
    assert!(message.contains(&addr.to_string()), "{message}");
    assert!(message.contains("security group"), "{message}");
    assert!(message.contains("private vs public"), "{message}");
    assert!(message.contains("booting"), "{message}");
}

#[tokio::test]
async fn an_expected_disconnect_succeeds_and_a_reconnect_with_the_pin_works() {
    let key = BuildKey::generate().unwrap();
    let sshd = Sshd::start(&key);
    let (mut ssh, host_key) = connect_with_retry(sshd.addr, "root", &key, None, CONNECT_TIMEOUT)
        .await
        .unwrap();
    let outcome = ssh
        .exec_expect_disconnect("echo going down; kill -9 $PPID; sleep 5", &[], |_, _| {})
        .await
        .unwrap();
    assert!(
        matches!(outcome, DisconnectOutcome::Disconnected { .. }),
        "{outcome:?}"
    );
    let mut again = connect(&sshd, &key, Some(&host_key)).await;
    let mut lines = Vec::new();
    let out = again
        .exec("echo back", &[], |_, l| lines.push(l.to_string()))
        .await
        .unwrap();
    assert!(out.success());
    assert_eq!(lines, ["back"]);
    // Without the expectation, the same drop is an error naming the command.
    let err = again
        .exec("kill -9 $PPID; sleep 5", &[], |_, _| {})
        .await
        .unwrap_err();
    assert!(matches!(err, SshError::Disconnected { .. }), "{err}");
    // And a command that simply exits is reported as such, not as a disconnect.
    let mut third = connect(&sshd, &key, Some(&host_key)).await;
    let outcome = third
        .exec_expect_disconnect("exit 0", &[], |_, _| {})
        .await
        .unwrap();
    assert!(matches!(outcome, DisconnectOutcome::Exited(ref o) if o.success()));
}

#[tokio::test]
async fn a_stored_key_is_private_reloads_identically_and_openssh_reads_it() {
    let root = tempfile::tempdir().unwrap();
    let store = KeyStore::new(root.path().join("keys"));
    let id = BuildId::parse("b-0123456789").unwrap();
    let created = store.load_or_create(&id).unwrap();
    let path = store.path_for(&id);
    let file_mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    let dir_mode = std::fs::metadata(root.path().join("keys"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(file_mode, 0o600);
    assert_eq!(dir_mode & 0o777, 0o700);
    let again = store.load_or_create(&id).unwrap();
    assert_eq!(again.public_openssh(), created.public_openssh());
    assert_eq!(format!("{again:?}"), "BuildKey(** redacted **)");

    let derived = Command::new("ssh-keygen")
        .arg("-y")
        .arg("-f")
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        derived.status.success(),
        "{}",
        String::from_utf8_lossy(&derived.stderr)
    );
    let derived = String::from_utf8(derived.stdout).unwrap();
    let blob = |line: &str| line.split_whitespace().nth(1).unwrap().to_string();
    assert_eq!(blob(&derived), blob(&created.public_openssh()));

    // The reloaded key authenticates against a real sshd.
    let sshd = Sshd::start(&created);
    let mut ssh = connect(&sshd, &store.load(&id).unwrap(), None).await;
    assert!(ssh.exec("true", &[], |_, _| {}).await.unwrap().success());

    assert!(store.delete(&id).unwrap());
    assert!(!path.exists());
    assert!(!store.delete(&id).unwrap());
}

#[tokio::test]
async fn an_upload_to_an_impossible_path_fails_naming_both_paths_and_the_remote_error() {
    let key = BuildKey::generate().unwrap();
    let sshd = Sshd::start(&key);
    let mut ssh = connect(&sshd, &key, None).await;
    let local = sshd.path("small.txt");
    std::fs::write(&local, "hello\n").unwrap();
    let blocker = sshd.path("a-file");
    std::fs::write(&blocker, "").unwrap();
    let remote = blocker.join("under/it.txt");
    let err = ssh
        .upload_file(&local, remote.to_str().unwrap(), 0o644)
        .await
        .unwrap_err();
    let message = err.to_string();
    assert!(matches!(err, SshError::UploadFailed { .. }), "{message}");
    assert!(message.contains(remote.to_str().unwrap()), "{message}");
    assert!(message.contains("small.txt"), "{message}");
    assert!(message.contains("Not a directory"), "{message}");
    // The session stays usable after a failed upload.
    assert!(ssh.exec("true", &[], |_, _| {}).await.unwrap().success());
}

/// The phase machine runs these in spawned tokio tasks: their futures must be `Send`.
#[allow(dead_code)]
fn ssh_futures_are_send(key: &BuildKey, session: &mut SshSession, addr: SocketAddr, path: &Path) {
    fn assert_send<T: Send>(_: T) {}
    assert_send(connect_with_retry(addr, "root", key, None, CONNECT_TIMEOUT));
    assert_send(session.exec("true", &[], |_, _| {}));
    assert_send(session.exec_expect_disconnect("reboot", &[], |_, _| {}));
    assert_send(session.upload_file(path, "/x", 0o644));
    assert_send(session.upload_dir(path, "/x"));
}
