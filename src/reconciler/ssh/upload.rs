//! Streamed uploads of files and directory trees over an exec channel's stdin.
//!
//! A file goes to `<path>.bakerd-upload` through `cat`, then is chmod'ed and renamed into place, so a
//! reader (or a resumed build) never sees a half-written file at `<path>`. The remote side reports
//! the byte count it wrote (`wc -c`), which must equal what was sent.

use std::fs;
use std::path::{Path, PathBuf};

use tokio::io::AsyncReadExt;

use super::connect::SshSession;
use super::exec::{drain, shell_quote, LineSink, RemoteExit, Tail};
use super::SshError;

/// Bytes read from the local file per channel write: bounded memory whatever the file size.
const CHUNK_BYTES: usize = 32 * 1024;
/// Directories created per `mkdir -p` command, to stay far below the kernel's argument limit.
const DIRS_PER_MKDIR: usize = 200;
/// Guard against symlink loops while walking a local directory.
const MAX_DEPTH: usize = 64;

/// What [`SshSession::upload_dir`] transferred.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct UploadSummary {
    /// Regular files uploaded.
    pub files: u64,
    /// Directories created (including the root).
    pub dirs: u64,
    /// Total file bytes sent.
    pub bytes: u64,
}

impl SshSession {
    /// Uploads the local file `local` to `remote_path` with permission bits `mode` (e.g. `0o755`),
    /// creating parent directories. Returns the bytes sent.
    ///
    /// Guarantees: the file is streamed in 32 KiB chunks (constant memory); `remote_path` is replaced
    /// atomically (rename) and only after every byte arrived, checked by the remote byte count.
    /// Caveats: a `<remote_path>.bakerd-upload` temporary may remain if the connection drops; a
    /// retry overwrites it.
    pub async fn upload_file(
        &mut self,
        local: &Path,
        remote_path: &str,
        mode: u32,
    ) -> Result<u64, SshError> {
        let file = tokio::fs::File::open(local)
            .await
            .map_err(|source| SshError::ReadLocal {
                path: local.to_path_buf(),
                source,
            })?;
        self.upload_reader(file, local, remote_path, mode).await
    }

    /// Uploads `bytes` (e.g. a generated script) to `remote_path`, as [`upload_file`](Self::upload_file)
    /// does for a file.
    pub async fn upload_bytes(
        &mut self,
        bytes: &[u8],
        remote_path: &str,
        mode: u32,
    ) -> Result<u64, SshError> {
        self.upload_reader(bytes, Path::new("<generated>"), remote_path, mode)
            .await
    }

    /// Streams `reader` to `remote_path`; `label` names the source in errors.
    async fn upload_reader<R: tokio::io::AsyncRead + Unpin>(
        &mut self,
        mut reader: R,
        label: &Path,
        remote_path: &str,
        mode: u32,
    ) -> Result<u64, SshError> {
        let read_err = |source| SshError::ReadLocal {
            path: label.to_path_buf(),
            source,
        };
        let mut channel = self.start(&upload_command(remote_path, mode), &[]).await?;
        let mut buffer = vec![0u8; CHUNK_BYTES];
        let mut sent = 0u64;
        loop {
            let n = reader.read(&mut buffer).await.map_err(read_err)?;
            if n == 0 {
                break;
            }
            channel
                .data(&buffer[..n])
                .await
                .map_err(|source| self.send_error(remote_path, source))?;
            sent += n as u64;
        }
        let _ = channel.eof().await;
        let mut stdout = String::new();
        let mut sink = LineSink::new(|_, line: &str| stdout.push_str(line));
        let status = drain(&mut channel, &mut sink).await;
        let tail = sink.finish();
        self.check_upload(label, remote_path, sent, status, &stdout, tail)?;
        Ok(sent)
    }

    /// Uploads the contents of `local_dir` into `remote_dir` (created if missing), recursively,
    /// keeping each file's permission bits. Symbolic links are followed.
    ///
    /// Guarantees: every file is uploaded as by [`upload_file`](Self::upload_file).
    /// Caveats: not atomic as a whole: an interrupted upload leaves some files in place; running it
    /// again converges.
    pub async fn upload_dir(
        &mut self,
        local_dir: &Path,
        remote_dir: &str,
    ) -> Result<UploadSummary, SshError> {
        let tree = walk(local_dir)?;
        let root = remote_dir.trim_end_matches('/');
        let root = if root.is_empty() { "/" } else { root };
        let mut dirs = vec![root.to_string()];
        dirs.extend(tree.dirs.iter().map(|rel| join_remote(root, rel)));
        for batch in dirs.chunks(DIRS_PER_MKDIR) {
            let quoted: Vec<String> = batch.iter().map(|d| shell_quote(d)).collect();
            let command = format!("mkdir -p {}", quoted.join(" "));
            self.exec(&command, &[], |_, _| {})
                .await?
                .check(self.addr, &command)?;
        }
        let mut summary = UploadSummary {
            dirs: dirs.len() as u64,
            ..UploadSummary::default()
        };
        for file in &tree.files {
            let local = local_dir.join(&file.relative);
            let remote = join_remote(root, &file.relative);
            summary.bytes += self.upload_file(&local, &remote, file.mode).await?;
            summary.files += 1;
        }
        Ok(summary)
    }

    fn send_error(&self, remote: &str, source: thrussh::Error) -> SshError {
        SshError::SendData {
            addr: self.addr,
            remote: remote.to_string(),
            source,
        }
    }

    fn check_upload(
        &self,
        local: &Path,
        remote: &str,
        sent: u64,
        status: Option<RemoteExit>,
        stdout: &str,
        tail: Tail,
    ) -> Result<(), SshError> {
        let detail = match status {
            Some(RemoteExit::Code(0)) => match stdout.trim().parse::<u64>() {
                Ok(received) if received == sent => return Ok(()),
                Ok(received) => format!("sent {sent} bytes but the remote file has {received}"),
                Err(_) => format!("remote byte count unreadable: {:?}", stdout.trim()),
            },
            Some(status) => format!("remote command ended with {status}"),
            None => "connection lost before the remote side confirmed".to_string(),
        };
        Err(SshError::UploadFailed {
            addr: self.addr,
            local: local.to_path_buf(),
            remote: remote.to_string(),
            detail,
            tail,
        })
    }
}

/// `mkdir -p <dir> && cat > <tmp> && chmod <mode> <tmp> && mv -f <tmp> <path> && wc -c < <path>`.
fn upload_command(remote_path: &str, mode: u32) -> String {
    let temp = format!("{remote_path}.bakerd-upload");
    let (path, temp_q) = (shell_quote(remote_path), shell_quote(&temp));
    let mkdir = match remote_path.rsplit_once('/') {
        Some((dir, _)) if !dir.is_empty() => format!("mkdir -p {} && ", shell_quote(dir)),
        _ => String::new(),
    };
    format!(
        "{mkdir}cat > {temp_q} && chmod {:o} {temp_q} && mv -f {temp_q} {path} && wc -c < {path}",
        mode & 0o7777
    )
}

fn join_remote(root: &str, relative: &str) -> String {
    if root == "/" {
        format!("/{relative}")
    } else {
        format!("{root}/{relative}")
    }
}

/// A local tree: directories and files relative to its root, with `/` separators, sorted.
struct LocalTree {
    dirs: Vec<String>,
    files: Vec<LocalFile>,
}

struct LocalFile {
    relative: String,
    mode: u32,
}

fn walk(root: &Path) -> Result<LocalTree, SshError> {
    let mut tree = LocalTree {
        dirs: Vec::new(),
        files: Vec::new(),
    };
    walk_into(root, root, 0, &mut tree)?;
    Ok(tree)
}

fn walk_into(root: &Path, dir: &Path, depth: usize, tree: &mut LocalTree) -> Result<(), SshError> {
    let read_err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| SshError::ReadLocal { path, source }
    };
    if depth > MAX_DEPTH {
        return Err(SshError::UnsupportedLocalFile {
            path: dir.to_path_buf(),
        });
    }
    let mut entries: Vec<PathBuf> = fs::read_dir(dir)
        .map_err(read_err(dir))?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()
        .map_err(read_err(dir))?;
    entries.sort();
    for path in entries {
        let meta = fs::metadata(&path).map_err(read_err(&path))?;
        let relative = relative_text(root, &path)?;
        if meta.is_dir() {
            tree.dirs.push(relative);
            walk_into(root, &path, depth + 1, tree)?;
        } else if meta.is_file() {
            use std::os::unix::fs::PermissionsExt;
            let mode = meta.permissions().mode() & 0o7777;
            tree.files.push(LocalFile { relative, mode });
        } else {
            return Err(SshError::UnsupportedLocalFile { path });
        }
    }
    Ok(())
}

fn relative_text(root: &Path, path: &Path) -> Result<String, SshError> {
    let unsupported = || SshError::UnsupportedLocalFile {
        path: path.to_path_buf(),
    };
    let relative = path.strip_prefix(root).map_err(|_| unsupported())?;
    let text = relative.to_str().ok_or_else(unsupported)?;
    Ok(text.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upload_command_creates_parent_and_renames_atomically() {
        assert_eq!(
            upload_command("/opt/my app/run.sh", 0o100755),
            "mkdir -p '/opt/my app' && cat > '/opt/my app/run.sh.bakerd-upload' && chmod 755 \
             '/opt/my app/run.sh.bakerd-upload' && mv -f '/opt/my app/run.sh.bakerd-upload' \
             '/opt/my app/run.sh' && wc -c < '/opt/my app/run.sh'"
        );
        assert!(upload_command("/f", 0o644).starts_with("cat > '/f.bakerd-upload'"));
        assert!(upload_command("f", 0o644).starts_with("cat > 'f.bakerd-upload'"));
    }
}
