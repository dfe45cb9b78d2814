//! Root filesystems as directory trees: building the busybox-static base tree, copying trees
//! atomically (disk ← image, snapshot ← disk, image ← snapshot, image ← image), removing them, and
//! checking that a chroot path is acceptable to sshd.

use super::MachineError;
use std::fs;
use std::os::unix::fs::{symlink, DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Where a static busybox may live on the host (Debian's `busybox-static` installs both).
const BUSYBOX_CANDIDATES: [&str; 2] = ["/bin/busybox", "/usr/bin/busybox"];

/// Applets linked when `busybox --list-full` is unavailable.
const FALLBACK_APPLETS: &[&str] = &[
    "sh",
    "ash",
    "ls",
    "cat",
    "echo",
    "mkdir",
    "rm",
    "cp",
    "mv",
    "chmod",
    "chown",
    "tar",
    "touch",
    "grep",
    "sed",
    "env",
    "sleep",
    "id",
    "uname",
    "head",
    "tail",
    "wc",
    "test",
    "[",
    "printf",
    "true",
    "false",
    "ln",
    "pwd",
    "stat",
    "find",
    "sync",
    "date",
    "hostname",
    "dd",
    "awk",
    "gzip",
    "md5sum",
    "sha256sum",
    "reboot",
    "poweroff",
];

/// Prefix of trees being built or copied; never visible under a resource's own name.
pub(crate) const TEMP_PREFIX: &str = ".tmp-";
/// Prefix of trees being deleted.
pub(crate) const TRASH_PREFIX: &str = ".trash-";

fn io_error(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> MachineError {
    let path = path.to_path_buf();
    move |source| MachineError::Io { what, path, source }
}

/// Creates `dir` (and missing parents) with `mode`, then forces `mode` on `dir` itself regardless
/// of the umask, because sshd rejects group/world-writable chroot components.
pub(crate) fn ensure_dir(dir: &Path, mode: u32) -> Result<(), MachineError> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(mode)
        .create(dir)
        .map_err(io_error("create directory", dir))?;
    fs::set_permissions(dir, fs::Permissions::from_mode(mode))
        .map_err(io_error("set permissions of", dir))
}

/// A sibling of `dest` named `<prefix><name>-<random>`, on the same file system so that `rename`
/// is atomic.
fn sibling(dest: &Path, prefix: &str) -> PathBuf {
    let name = dest.file_name().and_then(|n| n.to_str()).unwrap_or("tree");
    dest.with_file_name(format!("{prefix}{name}-{}", uuid::Uuid::new_v4().simple()))
}

/// Builds a tree in a temporary sibling of `dest` with `fill(&temp)` and renames it to `dest`.
///
/// Guarantees: `dest` either does not exist or is complete; a crash mid-build leaves only a
/// `.tmp-` sibling, which [`remove_stale_temps`] clears. If `dest` already exists it is kept as
/// is and `fill` does not run (resource ids are never reused, so an existing tree is the same one).
pub(crate) fn build_atomically(
    dest: &Path,
    fill: impl FnOnce(&Path) -> Result<(), MachineError>,
) -> Result<(), MachineError> {
    if dest.exists() {
        return Ok(());
    }
    let temp = sibling(dest, TEMP_PREFIX);
    ensure_dir(&temp, 0o755)?;
    let built =
        fill(&temp).and_then(|()| fs::rename(&temp, dest).map_err(io_error("rename", &temp)));
    if built.is_err() {
        let _ = fs::remove_dir_all(&temp);
    }
    built
}

/// Copies the tree `from` to the new path `to` with `cp -a` (modes, owners, symlinks, device
/// nodes, timestamps and hard links preserved).
pub(crate) fn copy_tree(from: &Path, to: &Path) -> Result<(), MachineError> {
    let output = Command::new("cp")
        .arg("-a")
        .arg("--")
        .arg(from)
        .arg(to)
        .output()
        .map_err(io_error("run cp -a for", from))?;
    if output.status.success() {
        return Ok(());
    }
    Err(MachineError::Copy {
        from: from.to_path_buf(),
        to: to.to_path_buf(),
        detail: format!(
            "{}: {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        ),
    })
}

/// Removes the tree `dir` if it exists: renamed away first so it vanishes at once, then deleted.
pub(crate) fn remove_tree(dir: &Path) -> Result<(), MachineError> {
    let trash = sibling(dir, TRASH_PREFIX);
    match fs::rename(dir, &trash) {
        Ok(()) => fs::remove_dir_all(&trash).map_err(io_error("remove", &trash)),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(MachineError::Io {
            what: "move away for deletion",
            path: dir.to_path_buf(),
            source,
        }),
    }
}

/// Removes half-built (`.tmp-`) and half-deleted (`.trash-`) trees left in `kind_dir` by a crash.
pub(crate) fn remove_stale_temps(kind_dir: &Path) -> Result<(), MachineError> {
    let entries = fs::read_dir(kind_dir).map_err(io_error("list", kind_dir))?;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with(TEMP_PREFIX) || name.starts_with(TRASH_PREFIX) {
            let path = entry.path();
            fs::remove_dir_all(&path).map_err(io_error("remove stale", &path))?;
        }
    }
    Ok(())
}

/// Checks what sshd's `ChrootDirectory` checks: every component of `path` is a directory owned by
/// root and not writable by group or others.
pub(crate) fn check_chroot_path(path: &Path) -> Result<(), MachineError> {
    use std::os::unix::fs::MetadataExt;
    for component in path.ancestors() {
        let meta =
            fs::metadata(component).map_err(io_error("inspect chroot component", component))?;
        let reason = if !meta.is_dir() {
            Some("is not a directory".to_string())
        } else if meta.uid() != 0 {
            Some(format!("is owned by uid {}, not root", meta.uid()))
        } else if meta.mode() & 0o022 != 0 {
            Some(format!(
                "has mode {:o} (group/world-writable)",
                meta.mode() & 0o7777
            ))
        } else {
            None
        };
        if let Some(reason) = reason {
            return Err(MachineError::UnsafeChrootPath {
                path: component.to_path_buf(),
                reason,
            });
        }
    }
    Ok(())
}

/// The host's static busybox.
fn find_busybox() -> Result<&'static Path, MachineError> {
    BUSYBOX_CANDIDATES
        .iter()
        .map(Path::new)
        .find(|path| path.is_file())
        .ok_or_else(|| MachineError::NoBusybox {
            tried: BUSYBOX_CANDIDATES.join(", "),
        })
}

/// Root's login shell from the host's passwd: sshd runs *that* path inside the chroot.
fn host_root_shell() -> Option<String> {
    let passwd = fs::read_to_string("/etc/passwd").ok()?;
    passwd
        .lines()
        .map(|line| line.split(':').collect::<Vec<_>>())
        .find(|fields| fields.len() == 7 && fields[0] == "root")
        .map(|fields| fields[6].to_string())
        .filter(|shell| shell.starts_with('/'))
}

/// Applet paths relative to the root (`bin/ls`, `usr/bin/awk`, …).
fn applet_paths(busybox: &Path) -> Vec<String> {
    let listed = Command::new(busybox)
        .arg("--list-full")
        .output()
        .ok()
        .filter(|out| out.status.success())
        .map(|out| String::from_utf8_lossy(&out.stdout).into_owned())
        .unwrap_or_default();
    let mut paths: Vec<String> = listed
        .lines()
        .map(|line| line.trim().trim_start_matches('/').to_string())
        .filter(|line| !line.is_empty() && !line.contains(".."))
        .collect();
    if paths.is_empty() {
        paths = FALLBACK_APPLETS
            .iter()
            .map(|a| format!("bin/{a}"))
            .collect();
    }
    paths
}

/// Writes a new file with `mode`.
fn write_file(path: &Path, contents: &str, mode: u32) -> Result<(), MachineError> {
    fs::write(path, contents).map_err(io_error("write", path))?;
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).map_err(io_error("chmod", path))
}

/// Fills the empty directory `rootfs` with a busybox-static root filesystem: the usual
/// directories, busybox with its applet links, `/etc/os-release`, passwd/group for root, device
/// nodes, and root's host login shell as a script that execs busybox `sh`.
pub(crate) fn build_base_rootfs(rootfs: &Path, os_release: &str) -> Result<(), MachineError> {
    ensure_dir(rootfs, 0o755)?;
    for dir in [
        "bin", "sbin", "usr/bin", "usr/sbin", "etc", "dev", "proc", "sys", "run", "var",
    ] {
        ensure_dir(&rootfs.join(dir), 0o755)?;
    }
    ensure_dir(&rootfs.join("root"), 0o700)?;
    ensure_dir(&rootfs.join("tmp"), 0o1777)?;
    ensure_dir(&rootfs.join("var/tmp"), 0o1777)?;
    install_busybox(rootfs)?;
    write_file(&rootfs.join("etc/os-release"), os_release, 0o644)?;
    write_file(
        &rootfs.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\n",
        0o644,
    )?;
    write_file(&rootfs.join("etc/group"), "root:x:0:\n", 0o644)?;
    write_file(&rootfs.join("etc/hostname"), "bakerd-sim\n", 0o644)?;
    make_device_nodes(&rootfs.join("dev"));
    install_login_shell(rootfs)
}

/// Copies busybox to `/bin/busybox` and links every applet to it (existing paths are kept).
fn install_busybox(rootfs: &Path) -> Result<(), MachineError> {
    let busybox = find_busybox()?;
    let installed = rootfs.join("bin/busybox");
    fs::copy(busybox, &installed).map_err(io_error("copy busybox to", &installed))?;
    fs::set_permissions(&installed, fs::Permissions::from_mode(0o755))
        .map_err(io_error("chmod", &installed))?;
    for applet in applet_paths(busybox) {
        let link = rootfs.join(&applet);
        if link.symlink_metadata().is_ok() {
            continue;
        }
        if let Some(parent) = link.parent() {
            ensure_dir(parent, 0o755)?;
        }
        symlink("/bin/busybox", &link).map_err(io_error("link applet", &link))?;
    }
    Ok(())
}

/// Device nodes sessions expect (`/dev/null` above all). Best effort: without CAP_MKNOD (some
/// containers) the tree still works for plain commands.
fn make_device_nodes(dev: &Path) {
    for (name, minor) in [("null", 3), ("zero", 5), ("random", 8), ("urandom", 9)] {
        let path = dev.join(name);
        let Ok(c_path) = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()) else {
            continue;
        };
        // SAFETY: c_path is a valid NUL-terminated string that outlives both calls.
        let made = unsafe {
            libc::mknod(
                c_path.as_ptr(),
                libc::S_IFCHR | 0o666,
                libc::makedev(1, minor),
            ) == 0
                && libc::chmod(c_path.as_ptr(), 0o666) == 0
        };
        if !made {
            tracing::warn!(path = %path.display(), error = %std::io::Error::last_os_error(),
                "could not create device node in simulated root filesystem");
        }
    }
}

/// sshd starts root's *host* login shell inside the chroot; when that path is missing there
/// (e.g. `/bin/bash`), it becomes a script that hands over to busybox `sh` with the same args.
fn install_login_shell(rootfs: &Path) -> Result<(), MachineError> {
    let Some(shell) = host_root_shell() else {
        return Ok(());
    };
    let path = rootfs.join(shell.trim_start_matches('/'));
    if path.symlink_metadata().is_ok() {
        return Ok(());
    }
    if let Some(parent) = path.parent() {
        ensure_dir(parent, 0o755)?;
    }
    write_file(
        &path,
        "#!/bin/busybox sh\nexec /bin/busybox sh \"$@\"\n",
        0o755,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chroot_check_refuses_a_world_writable_component() {
        let err = check_chroot_path(Path::new("/tmp")).expect_err("/tmp is 1777");
        assert!(
            matches!(&err, MachineError::UnsafeChrootPath { path, .. } if path == Path::new("/tmp")),
            "{err}"
        );
        check_chroot_path(Path::new("/usr/bin")).expect("/usr/bin is root-owned 0755");
    }

    #[test]
    fn build_atomically_leaves_nothing_when_filling_fails() {
        let base = tempfile::tempdir().expect("tempdir");
        let dest = base.path().join("img-1");
        let result = build_atomically(&dest, |temp| {
            fs::write(temp.join("half"), "x").expect("write");
            Err(MachineError::NoBusybox {
                tried: "test".into(),
            })
        });
        assert!(result.is_err());
        assert!(!dest.exists());
        assert_eq!(fs::read_dir(base.path()).expect("list").count(), 0);
    }

    #[test]
    fn host_root_shell_is_an_absolute_path() {
        let shell = host_root_shell().expect("root has a login shell in /etc/passwd");
        assert!(shell.starts_with('/'), "{shell}");
    }
}
