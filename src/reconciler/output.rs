//! What a build prints: a line per phase with its duration, provisioner output prefixed,
//! progress bars for snapshot/image progress on a terminal, or one JSON event per line (`--json`).
//!
//! Guarantees: nothing secret passes through here — callers hand over ids, phases and
//! provisioner output only.

use super::phase::Phase;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::json;
use std::io::{IsTerminal, Write};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How output is rendered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Plain lines (not a terminal).
    Plain,
    /// Plain lines plus progress bars (stdout is a terminal).
    Terminal,
    /// One JSON object per line on stdout.
    Json,
}

/// Shared, cheap-to-clone output sink.
#[derive(Clone)]
pub struct Output {
    mode: Mode,
    bar: Arc<Mutex<Option<ProgressBar>>>,
    /// On a terminal: a spinner with the elapsed time while a step waits (instance start, SSH,
    /// provisioners, stops, snapshot, image), so a long wait never looks like a hang.
    spinner: Arc<Mutex<Option<ProgressBar>>>,
    /// Every bar and spinner of the process, drawn together with the lines printed above them
    /// (builds running side by side each have their own).
    multi: MultiProgress,
    /// The build this handle speaks for: notes get its `[b-…]` prefix and JSON events its id,
    /// so the lines of builds running side by side can be told apart.
    build: Option<Arc<str>>,
}

impl Output {
    /// Picks the mode: JSON if asked, else a terminal check on stdout.
    pub fn new(json: bool) -> Self {
        let mode = if json {
            Mode::Json
        } else if std::io::stdout().is_terminal() {
            Mode::Terminal
        } else {
            Mode::Plain
        };
        let target = match mode {
            Mode::Terminal => ProgressDrawTarget::stdout(),
            _ => ProgressDrawTarget::hidden(),
        };
        Output {
            mode,
            bar: Arc::new(Mutex::new(None)),
            spinner: Arc::new(Mutex::new(None)),
            multi: MultiProgress::with_draw_target(target),
            build: None,
        }
    }

    /// A handle for one build's lines (its own progress bar, its id on every line).
    pub fn for_build(&self, build: &str) -> Output {
        Output {
            mode: self.mode,
            bar: Arc::new(Mutex::new(None)),
            spinner: Arc::new(Mutex::new(None)),
            multi: self.multi.clone(),
            build: Some(Arc::from(build)),
        }
    }

    /// The rendering mode.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    fn emit(&self, line: &str, event: serde_json::Value) {
        if self.mode == Mode::Terminal {
            let _ = self.multi.println(line);
            return;
        }
        let mut stdout = std::io::stdout().lock();
        let _ = match self.mode {
            Mode::Json => writeln!(stdout, "{event}"),
            _ => writeln!(stdout, "{line}"),
        };
        let _ = stdout.flush();
    }

    /// A step is about to run.
    pub fn step_started(&self, build: &str, phase: &Phase) {
        self.emit(
            &format!("[{build}] {} …", phase.step_description()),
            json!({"event": "step_started", "build": build, "phase": phase.name(), "step": phase.step_description()}),
        );
        if self.mode == Mode::Terminal {
            let spinner = self.multi.add(ProgressBar::new_spinner());
            if let Ok(style) = ProgressStyle::with_template("{spinner} [{prefix}] {msg} {elapsed}")
            {
                spinner.set_style(style);
            }
            spinner.set_prefix(build.to_string());
            spinner.set_message(phase.step_description());
            spinner.enable_steady_tick(Duration::from_millis(120));
            if let Some(old) = self.lock_spinner().replace(spinner) {
                old.finish_and_clear();
            }
        }
    }

    fn lock_spinner(&self) -> std::sync::MutexGuard<'_, Option<ProgressBar>> {
        self.spinner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Removes the step's spinner (the step ended).
    fn stop_spinner(&self) {
        if let Some(spinner) = self.lock_spinner().take() {
            spinner.finish_and_clear();
        }
    }

    /// A step finished and the build reached `phase`.
    pub fn step_done(&self, build: &str, phase: &Phase, secs: f64) {
        self.stop_spinner();
        self.emit(
            &format!("[{build}] {} ({secs:.1}s)", phase.name()),
            json!({"event": "phase", "build": build, "phase": phase.name(), "seconds": secs}),
        );
    }

    /// A step failed.
    pub fn step_failed(&self, build: &str, at: &Phase, secs: f64, error: &str) {
        self.stop_spinner();
        self.emit(
            &format!("[{build}] FAILED: {} ({secs:.1}s): {error}", at.step_description()),
            json!({"event": "failed", "build": build, "phase": at.name(), "seconds": secs, "error": error}),
        );
    }

    /// The build stopped at a safe point before the step starting at `at` finished.
    pub fn interrupted(&self, build: &str, at: &Phase, message: &str) {
        self.stop_spinner();
        self.emit(
            &format!("[{build}] {message}"),
            json!({"event": "interrupted", "build": build, "phase": at.name(), "step": at.step_description(), "message": message}),
        );
    }

    /// A free-form note.
    pub fn note(&self, message: &str) {
        match &self.build {
            Some(build) if !message.starts_with('[') => self.emit(
                &format!("[{build}] {message}"),
                json!({"event": "note", "build": &**build, "message": message}),
            ),
            _ => self.emit(message, json!({"event": "note", "message": message})),
        }
    }

    /// An error that ends a command or one build of it: on stderr as text, as a JSON event on
    /// stdout under `--json` (so a JSON reader sees every outcome).
    pub fn error(&self, build: Option<&super::state::BuildId>, message: &str, code: u8) {
        let build = build.map(|b| b.to_string());
        match self.mode {
            Mode::Json => self.emit(
                "",
                json!({"event": "error", "build": build, "exit_code": code, "message": message}),
            ),
            _ => match build {
                Some(b) => eprintln!("bakerd: error: [{b}] {message}"),
                None => eprintln!("bakerd: error: {message}"),
            },
        }
    }

    /// One line of provisioner output.
    pub fn provisioner_line(&self, build: &str, index: usize, stream: &str, line: &str) {
        self.emit(
            &format!("[{build}] [provisioner {index}] {line}"),
            json!({"event": "output", "build": build, "provisioner": index, "stream": stream, "line": line}),
        );
    }

    /// One line of a `verify` check's output (or a note about it).
    pub fn verify_line(&self, build: &str, index: usize, stream: &str, line: &str) {
        self.emit(
            &format!("[{build}] [verify {index}] {line}"),
            json!({"event": "output", "build": build, "verify_check": index, "stream": stream, "line": line}),
        );
    }

    /// Progress of a snapshot or image, in percent.
    pub fn progress(&self, what: &str, percent: u32) {
        match self.mode {
            Mode::Terminal => {
                let mut bar = self.bar.lock().unwrap_or_else(|e| e.into_inner());
                let bar = bar.get_or_insert_with(|| {
                    let b = self.multi.add(ProgressBar::new(100));
                    if let Ok(style) = ProgressStyle::with_template("{msg:>9} [{bar:40}] {pos:>3}%")
                    {
                        b.set_style(style.progress_chars("=> "));
                    }
                    b.set_message(what.to_string());
                    b
                });
                bar.set_position(percent.min(100) as u64);
            }
            Mode::Json => self.emit(
                "",
                json!({"event": "progress", "build": self.build.as_deref(), "what": what, "percent": percent}),
            ),
            Mode::Plain => {}
        }
    }

    /// Ends a progress bar started by [`progress`](Self::progress).
    pub fn progress_done(&self, what: &str) {
        let _ = what;
        if let Some(bar) = self.bar.lock().unwrap_or_else(|e| e.into_inner()).take() {
            bar.finish_and_clear();
        }
    }

    /// The final result of a command.
    pub fn result(&self, message: &str, event: serde_json::Value) {
        self.emit(message, event);
    }
}
