//! OpenSSH inside the instances: the host's `sshd`, `scp` and `sftp-server` copied into base
//! images with the shared libraries `ldd` lists for them, and the files the simulator installs
//! into an instance before its port 22 opens (sshd_config, host key, root's authorized keys), as
//! cloud-init does on ECS.

use super::enter::FileToInstall;
use super::MachineError;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The host's sshd (Debian's `openssh-server`); required.
pub(crate) const HOST_SSHD: &str = "/usr/sbin/sshd";

/// Other OpenSSH programs copied when present: `scp -O` needs `scp` on the server; OpenSSH ≥ 9.8
/// splits sshd into `sshd-session` and `sshd-auth`.
const OPTIONAL_PROGRAMS: [&str; 4] = [
    "/usr/bin/scp",
    "/usr/lib/openssh/sftp-server",
    "/usr/lib/openssh/sshd-session",
    "/usr/lib/openssh/sshd-auth",
];

/// sshd's privilege-separation user, as in the instance's `/etc/passwd`.
pub(crate) const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\n\
sshd:x:74:65534:privilege separation:/run/sshd:/bin/false\n\
nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n";
pub(crate) const GROUP: &str = "root:x:0:\ntty:x:5:\nnogroup:x:65534:\n";
/// Root has no password (`*`: key logins only) until one is set.
pub(crate) const SHADOW: &str = "root:*:19000:0:99999:7:::\nsshd:*:19000:0:99999:7:::\n\
nobody:*:19000:0:99999:7:::\n";

fn io_error(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> MachineError {
    let path = path.to_path_buf();
    move |source| MachineError::Io { what, path, source }
}

/// Copies sshd and friends with their libraries into `rootfs` at the same paths as on the host.
pub(crate) fn install_openssh(rootfs: &Path) -> Result<(), MachineError> {
    if !Path::new(HOST_SSHD).is_file() {
        return Err(MachineError::NoSshd);
    }
    let programs: Vec<&str> = std::iter::once(HOST_SSHD)
        .chain(
            OPTIONAL_PROGRAMS
                .into_iter()
                .filter(|p| Path::new(p).is_file()),
        )
        .collect();
    let mut files: Vec<PathBuf> = programs.iter().map(PathBuf::from).collect();
    for program in &programs {
        files.extend(shared_libraries(program)?);
    }
    files.sort();
    files.dedup();
    for file in files {
        copy_resolved(&file, &rootfs.join(file.strip_prefix("/").unwrap_or(&file)))?;
    }
    Ok(())
}

/// The absolute library paths `ldd` prints for `program` (dynamic loader included).
fn shared_libraries(program: &str) -> Result<Vec<PathBuf>, MachineError> {
    let output = Command::new("ldd")
        .arg(program)
        .output()
        .map_err(io_error("run ldd on", Path::new(program)))?;
    Ok(String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| {
            let path = match line.split_once("=>") {
                Some((_, right)) => right.split_whitespace().next()?,
                None => line.split_whitespace().next()?,
            };
            path.starts_with('/').then(|| PathBuf::from(path))
        })
        .collect())
}

/// Copies the file `from` points to (symlinks resolved) to `to`, keeping its mode.
fn copy_resolved(from: &Path, to: &Path) -> Result<(), MachineError> {
    if let Some(parent) = to.parent() {
        super::rootfs::ensure_dir(parent, 0o755)?;
    }
    if to.symlink_metadata().is_ok() {
        return Ok(());
    }
    fs::copy(from, to).map_err(io_error("copy OpenSSH file", from))?;
    let mode = fs::metadata(from)
        .map_err(io_error("inspect", from))?
        .permissions()
        .mode();
    fs::set_permissions(to, fs::Permissions::from_mode(mode & 0o755)).map_err(io_error("chmod", to))
}

/// sshd_config for an instance: root by key (and by password only when the instance has one),
/// no forwarding of any kind.
pub(crate) fn render_config(password_login: bool) -> String {
    let password = if password_login { "yes" } else { "no" };
    let root = if password_login {
        "yes"
    } else {
        "prohibit-password"
    };
    format!(
        "# Written by bakerd sim when the instance's SSH opens; local changes are replaced.\n\
         HostKey /etc/ssh/ssh_host_ed25519_key\n\
         PermitRootLogin {root}\n\
         PubkeyAuthentication yes\n\
         AuthorizedKeysFile .ssh/authorized_keys\n\
         PasswordAuthentication {password}\n\
         KbdInteractiveAuthentication no\n\
         UsePAM no\n\
         StrictModes yes\n\
         UseDNS no\n\
         PrintMotd no\n\
         PrintLastLog no\n\
         AllowTcpForwarding no\n\
         AllowStreamLocalForwarding no\n\
         AllowAgentForwarding no\n\
         PermitTunnel no\n\
         X11Forwarding no\n\
         GatewayPorts no\n\
         PermitUserEnvironment no\n\
         LogLevel VERBOSE\n\
         Subsystem sftp internal-sftp\n"
    )
}

/// `/etc/shadow` with `hash` (a crypt string: no `:` or newline) as root's password.
pub(crate) fn shadow_with_root_password(hash: &str) -> String {
    SHADOW.replacen("root:*:", &format!("root:{hash}:"), 1)
}

/// The files that make the instance's sshd accept exactly `authorized_keys` with `host_key`, and
/// root's password when the instance was created with one (`root_password_hash`): only then is
/// `/etc/shadow` rewritten and password login on.
pub(crate) fn files_for_ssh(
    host_key: (&str, &str),
    authorized_keys: &str,
    root_password_hash: Option<&str>,
) -> Vec<FileToInstall> {
    let password_login = root_password_hash.is_some();
    let mut keys = authorized_keys.trim().to_string();
    if !keys.is_empty() {
        keys.push('\n');
    }
    let file = |path: &str, mode, dir_mode, contents: String| FileToInstall {
        path: path.into(),
        mode,
        dir_mode,
        contents,
    };
    vec![
        file(
            "/etc/ssh/sshd_config",
            0o644,
            0o755,
            render_config(password_login),
        ),
        file(
            "/etc/ssh/ssh_host_ed25519_key",
            0o600,
            0o755,
            host_key.0.to_string(),
        ),
        file(
            "/etc/ssh/ssh_host_ed25519_key.pub",
            0o644,
            0o755,
            host_key.1.to_string(),
        ),
        file("/root/.ssh/authorized_keys", 0o600, 0o700, keys),
    ]
    .into_iter()
    .chain(
        root_password_hash
            .map(|hash| file("/etc/shadow", 0o640, 0o755, shadow_with_root_password(hash))),
    )
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instance_sshd_config_refuses_every_kind_of_forwarding_and_passwords_by_default() {
        let config = render_config(false);
        for line in [
            "AllowTcpForwarding no\n",
            "AllowStreamLocalForwarding no\n",
            "PermitTunnel no\n",
            "X11Forwarding no\n",
            "AllowAgentForwarding no\n",
            "PasswordAuthentication no\n",
            "UsePAM no\n",
        ] {
            assert!(config.contains(line), "missing {line:?}");
        }
        assert!(render_config(true).contains("PasswordAuthentication yes\n"));
    }

    #[test]
    fn only_an_instance_created_with_a_password_gets_it_in_shadow_and_password_logins() {
        let paths = |files: &[FileToInstall]| -> Vec<String> {
            files.iter().map(|f| f.path.clone()).collect()
        };
        let keys_only = files_for_ssh(("k", "k.pub"), "ssh-ed25519 AAAA", None);
        assert!(!paths(&keys_only).contains(&"/etc/shadow".to_string()));
        assert!(keys_only[0]
            .contents
            .contains("PasswordAuthentication no\n"));
        let with = files_for_ssh(("k", "k.pub"), "", Some("$6$salt$hash"));
        let shadow = with.iter().find(|f| f.path == "/etc/shadow").unwrap();
        assert_eq!(shadow.mode, 0o640);
        assert!(shadow.contents.starts_with("root:$6$salt$hash:19000:"));
        assert!(shadow.contents.contains("\nsshd:*:"), "{}", shadow.contents);
        assert!(with[0].contents.contains("PasswordAuthentication yes\n"));
    }
}
