//! Root filesystems as directory trees: building the busybox-static base tree (with OpenSSH),
//! copying trees atomically (disk ← image, snapshot ← disk, image ← snapshot, image ← image) and
//! removing them.

use super::MachineError;
use std::fs;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use super::openssh;
use super::tree::{self, Shift};

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
/// of the umask.
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
    ensure_dir(&temp, 0o700)?;
    let built =
        fill(&temp).and_then(|()| fs::rename(&temp, dest).map_err(io_error("rename", &temp)));
    if built.is_err() {
        let _ = tree::remove(&temp);
    }
    built
}

/// Copies the tree `from` to the new path `to` (see [`tree::copy`]: no symlink followed, no
/// mount crossed, owners shifted by `shift`).
pub(crate) fn copy_tree(from: &Path, to: &Path, shift: Shift) -> Result<(), MachineError> {
    tree::copy(from, to, shift).map_err(|error| MachineError::Copy {
        from: from.to_path_buf(),
        to: to.to_path_buf(),
        detail: error.to_string(),
    })
}

/// Removes the tree `dir` if it exists: renamed away first so it vanishes at once, then deleted
/// (see [`tree::remove`]). Anything that cannot go stays in a `.trash-` sibling, which
/// [`remove_stale_temps`] retries at the next start; the resource is gone either way.
pub(crate) fn remove_tree(dir: &Path) -> Result<(), MachineError> {
    let trash = sibling(dir, TRASH_PREFIX);
    match fs::rename(dir, &trash) {
        Ok(()) => {
            match tree::remove(&trash) {
                Ok(true) => {}
                Ok(false) => tracing::warn!(path = %trash.display(), "left a mount point in place"),
                Err(error) => {
                    tracing::warn!(path = %trash.display(), %error, "could not remove everything")
                }
            }
            Ok(())
        }
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
            tree::remove(&path).map_err(io_error("remove stale", &path))?;
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
/// directories, busybox with its applet links, `/etc/os-release`, passwd/group/shadow, and the
/// host's OpenSSH server with its libraries (the instance runs its own sshd).
pub(crate) fn build_base_rootfs(rootfs: &Path, os_release: &str) -> Result<(), MachineError> {
    ensure_dir(rootfs, 0o755)?;
    for dir in [
        "bin", "sbin", "usr/bin", "usr/sbin", "etc", "etc/ssh", "dev", "proc", "sys", "run", "var",
        "var/log", "mnt",
    ] {
        ensure_dir(&rootfs.join(dir), 0o755)?;
    }
    ensure_dir(&rootfs.join("root"), 0o700)?;
    ensure_dir(&rootfs.join("tmp"), 0o1777)?;
    ensure_dir(&rootfs.join("var/tmp"), 0o1777)?;
    install_busybox(rootfs)?;
    write_file(&rootfs.join("etc/os-release"), os_release, 0o644)?;
    write_file(&rootfs.join("etc/passwd"), openssh::PASSWD, 0o644)?;
    write_file(&rootfs.join("etc/group"), openssh::GROUP, 0o644)?;
    write_file(&rootfs.join("etc/shadow"), openssh::SHADOW, 0o640)?;
    write_file(&rootfs.join("etc/hostname"), "bakerd-sim\n", 0o644)?;
    openssh::install_openssh(rootfs)
}

/// Copies busybox to `/bin/busybox` and hard-links every applet to it (existing paths are kept).
///
/// Why hard links rather than symlinks: every instance disk, snapshot and image is a copy of this
/// tree, and a copy makes a new inode per symlink but only a directory entry per extra hard link
/// ([`tree::copy`] keeps links). With ~400 applets, inode allocation was most of the simulator's CPU
/// when many instances start at once. busybox picks the applet from `argv[0]` either way.
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
        fs::hard_link(&installed, &link).map_err(io_error("link applet", &link))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
