//! Running commands: live line-by-line output, exit status, output tail, environment variables.

use std::collections::VecDeque;
use std::fmt;
use std::net::SocketAddr;

use thrussh::client::Channel;
use thrussh::ChannelMsg;

use super::connect::SshSession;
use super::{short_command, SshError};

/// How many trailing output lines are kept for error messages.
pub const TAIL_LINES: usize = 20;
/// A line longer than this is emitted in pieces, so a binary blob without newlines cannot grow
/// memory without bound.
const MAX_LINE_BYTES: usize = 64 * 1024;

/// Which remote output stream a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

impl fmt::Display for Stream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Stream::Stdout => "out",
            Stream::Stderr => "err",
        })
    }
}

/// How a remote command ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RemoteExit {
    /// Exited with this code.
    Code(u32),
    /// Killed by this signal (name without `SIG`).
    Signal(String),
}

impl fmt::Display for RemoteExit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RemoteExit::Code(code) => write!(f, "exit code {code}"),
            RemoteExit::Signal(signal) => write!(f, "signal {signal}"),
        }
    }
}

/// The last output lines of a command, for error messages. Displays as `; last output:` plus the
/// indented lines, or nothing when empty.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tail(Box<[String]>);

impl Tail {
    /// The last [`TAIL_LINES`] of `lines` (output that did not come over SSH, e.g. Cloud
    /// Assistant's).
    pub fn from_lines(lines: &[String]) -> Tail {
        let start = lines.len().saturating_sub(TAIL_LINES);
        Tail(lines[start..].to_vec().into_boxed_slice())
    }

    /// The lines, oldest first.
    pub fn lines(&self) -> &[String] {
        &self.0
    }
}

impl fmt::Display for Tail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return Ok(());
        }
        f.write_str("; last output:")?;
        for line in &self.0 {
            write!(f, "\n    {line}")?;
        }
        Ok(())
    }
}

/// The result of a command that ran to completion (whatever its exit status).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecOutput {
    /// Exit code or signal.
    pub status: RemoteExit,
    /// The last [`TAIL_LINES`] lines of stdout and stderr, interleaved as received.
    pub tail: Tail,
}

impl ExecOutput {
    /// True for exit code 0.
    pub fn success(&self) -> bool {
        self.status == RemoteExit::Code(0)
    }

    /// `Ok(self)` on success, else [`SshError::CommandFailed`] naming `what` (e.g. the provisioner)
    /// with the status and the output tail.
    pub fn check(self, addr: SocketAddr, what: &str) -> Result<ExecOutput, SshError> {
        if self.success() {
            return Ok(self);
        }
        Err(SshError::CommandFailed {
            addr,
            command: short_command(what),
            status: self.status,
            tail: self.tail,
        })
    }
}

/// The result of [`SshSession::exec_expect_disconnect`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DisconnectOutcome {
    /// The connection dropped (or the command was killed by a signal, as a reboot does) before an
    /// exit code arrived: the expected outcome. The session is unusable; reconnect.
    Disconnected { tail: Tail },
    /// The command exited normally with a code instead; the caller decides (0 is usually fine).
    Exited(ExecOutput),
}

impl SshSession {
    /// Runs `command` through the remote user's shell, with `env` exported first, passing every
    /// complete output line to `output` as it arrives (without the newline; `\r` stripped; invalid
    /// UTF-8 replaced). Returns the exit status and output tail, also for non-zero exits (use
    /// [`ExecOutput::check`] to turn those into errors).
    ///
    /// Environment variables are exported in the command itself (`export K='v'; …`) rather than
    /// sent as SSH `env` requests, because OpenSSH's sshd drops every variable not listed in its
    /// `AcceptEnv`. Values are single-quoted, so any byte but NUL passes unchanged.
    /// Errors: [`SshError::Disconnected`] if the connection drops before an exit status.
    pub async fn exec(
        &mut self,
        command: &str,
        env: &[(String, String)],
        output: impl FnMut(Stream, &str),
    ) -> Result<ExecOutput, SshError> {
        let (status, tail) = self.run(command, env, output).await?;
        match status {
            Some(status) => Ok(ExecOutput { status, tail }),
            None => Err(SshError::Disconnected {
                addr: self.addr,
                command: short_command(command),
                tail,
            }),
        }
    }

    /// Like [`exec`](Self::exec) for commands that end the connection (`reboot`): a dropped
    /// connection, or the command dying of a signal, is success ([`DisconnectOutcome::Disconnected`]).
    ///
    /// Caveats: a machine that vanishes without closing TCP (no FIN/RST) leaves this waiting until
    /// the TCP stack gives up; reboots normally close connections cleanly.
    pub async fn exec_expect_disconnect(
        &mut self,
        command: &str,
        env: &[(String, String)],
        output: impl FnMut(Stream, &str),
    ) -> Result<DisconnectOutcome, SshError> {
        let (status, tail) = self.run(command, env, output).await?;
        Ok(match status {
            Some(RemoteExit::Code(code)) => DisconnectOutcome::Exited(ExecOutput {
                status: RemoteExit::Code(code),
                tail,
            }),
            Some(RemoteExit::Signal(_)) | None => DisconnectOutcome::Disconnected { tail },
        })
    }

    /// Opens a channel and sends `command` (with `env` exports); the channel is ready for stdin.
    pub(super) async fn start(
        &mut self,
        command: &str,
        env: &[(String, String)],
    ) -> Result<Channel, SshError> {
        let full = format!("{}{command}", env_exports(env)?);
        let mut channel =
            self.handle
                .channel_open_session()
                .await
                .map_err(|source| SshError::OpenChannel {
                    addr: self.addr,
                    source,
                })?;
        channel
            .exec(true, full)
            .await
            .map_err(|source| SshError::SendCommand {
                addr: self.addr,
                command: short_command(command),
                source,
            })?;
        Ok(channel)
    }

    async fn run(
        &mut self,
        command: &str,
        env: &[(String, String)],
        output: impl FnMut(Stream, &str),
    ) -> Result<(Option<RemoteExit>, Tail), SshError> {
        let mut channel = self.start(command, env).await?;
        // No stdin: tell the command at once, so `read` or `cat` do not wait forever.
        let _ = channel.eof().await;
        let mut sink = LineSink::new(output);
        let status = drain(&mut channel, &mut sink).await;
        Ok((status, sink.finish()))
    }
}

/// Reads channel messages until it closes, feeding output to `sink`. Returns the exit status, `None`
/// if the channel closed (or the connection dropped) without one.
pub(super) async fn drain<F: FnMut(Stream, &str)>(
    channel: &mut Channel,
    sink: &mut LineSink<F>,
) -> Option<RemoteExit> {
    let mut status = None;
    // `wait` returns None once the server closes the channel or the connection is gone.
    while let Some(message) = channel.wait().await {
        match message {
            ChannelMsg::Data { data } => sink.push(Stream::Stdout, &data),
            ChannelMsg::ExtendedData { data, ext: 1 } => sink.push(Stream::Stderr, &data),
            ChannelMsg::ExitStatus { exit_status } => status = Some(RemoteExit::Code(exit_status)),
            ChannelMsg::ExitSignal { signal_name, .. } => {
                status = Some(RemoteExit::Signal(signal_text(&signal_name)))
            }
            _ => {}
        }
    }
    status
}

fn signal_text(signal: &thrussh::Sig) -> String {
    match signal {
        thrussh::Sig::Custom(name) => name.clone(),
        other => format!("{other:?}"),
    }
}

/// Splits stdout and stderr bytes into lines for a callback and keeps the last lines.
pub(super) struct LineSink<F> {
    output: F,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
    tail: VecDeque<String>,
}

impl<F: FnMut(Stream, &str)> LineSink<F> {
    pub(super) fn new(output: F) -> LineSink<F> {
        LineSink {
            output,
            stdout: Vec::new(),
            stderr: Vec::new(),
            tail: VecDeque::with_capacity(TAIL_LINES),
        }
    }

    pub(super) fn push(&mut self, stream: Stream, bytes: &[u8]) {
        for &byte in bytes {
            let buffer = self.buffer(stream);
            if byte != b'\n' {
                buffer.push(byte);
                if buffer.len() < MAX_LINE_BYTES {
                    continue;
                }
            }
            let line = std::mem::take(buffer);
            self.emit(stream, &line);
        }
    }

    /// Emits unterminated last lines and returns the tail.
    pub(super) fn finish(mut self) -> Tail {
        for stream in [Stream::Stdout, Stream::Stderr] {
            let rest = std::mem::take(self.buffer(stream));
            if !rest.is_empty() {
                self.emit(stream, &rest);
            }
        }
        Tail(self.tail.into_iter().collect::<Vec<_>>().into_boxed_slice())
    }

    fn buffer(&mut self, stream: Stream) -> &mut Vec<u8> {
        match stream {
            Stream::Stdout => &mut self.stdout,
            Stream::Stderr => &mut self.stderr,
        }
    }

    fn emit(&mut self, stream: Stream, raw: &[u8]) {
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        let line = String::from_utf8_lossy(raw);
        (self.output)(stream, &line);
        if self.tail.len() == TAIL_LINES {
            self.tail.pop_front();
        }
        self.tail.push_back(line.into_owned());
    }
}

/// `export K='v'; ` for each variable, validated and quoted for POSIX sh.
pub fn env_exports(env: &[(String, String)]) -> Result<String, SshError> {
    let mut exports = String::new();
    for (name, value) in env {
        let mut chars = name.chars();
        let valid = chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            return Err(SshError::InvalidEnvName { name: name.clone() });
        }
        if value.contains('\0') {
            return Err(SshError::InvalidEnvValue { name: name.clone() });
        }
        exports.push_str(&format!("export {name}={}; ", shell_quote(value)));
    }
    Ok(exports)
}

/// Quotes `text` as one POSIX sh word: wrapped in single quotes, each `'` written as `'\''`.
pub fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_split_across_chunks_and_tail_is_bounded() {
        let mut seen = Vec::new();
        let mut sink = LineSink::new(|s: Stream, l: &str| seen.push(format!("{s}:{l}")));
        sink.push(Stream::Stdout, b"hel");
        sink.push(Stream::Stderr, b"oops\r\n");
        sink.push(Stream::Stdout, b"lo\nwor");
        for i in 0..30 {
            sink.push(Stream::Stderr, format!("e{i}\n").as_bytes());
        }
        let tail = sink.finish();
        assert_eq!(&seen[..3], ["err:oops", "out:hello", "err:e0"]);
        assert_eq!(seen.last().unwrap(), "out:wor");
        assert_eq!(tail.0.len(), TAIL_LINES);
        assert_eq!(tail.0.last().unwrap(), "wor");
    }

    #[test]
    fn env_values_are_single_quoted_and_names_checked() {
        let env = vec![("A_1".to_string(), "it's $HOME `x`".to_string())];
        assert_eq!(
            env_exports(&env).unwrap(),
            r#"export A_1='it'\''s $HOME `x`'; "#
        );
        let bad = vec![("1A".to_string(), "v".to_string())];
        assert!(matches!(
            env_exports(&bad),
            Err(SshError::InvalidEnvName { .. })
        ));
        let nul = vec![("A".to_string(), "a\0b".to_string())];
        assert!(matches!(
            env_exports(&nul),
            Err(SshError::InvalidEnvValue { .. })
        ));
    }
}
