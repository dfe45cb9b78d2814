//! Packer `shell` and `file` provisioners mapped to bakerd provisioners.
//!
//! Common provisioner keys: `only`/`except` (skip by builder name, with a warning), `override`
//! (options for this builder merged in), `pause_before` (warning: timing only). `timeout` and
//! `max_retries` change whether a build fails, so they are errors until bakerd supports them.

use super::convert::Options;
use super::draft::{Provisioner, ShellSource};
use super::error::PackerError;
use super::funcs::FuncContext;
use super::options::{check_keys, Reader, WarnOnly};
use super::template::{render_tree, RawSection};
use serde_json::{Map, Value};
use std::path::Path;

const COMMON_WARN_ONLY: &[WarnOnly] = &[
    WarnOnly {
        option: "pause_before",
        why: "a pause before provisioning cannot change the image",
    },
    TIMEOUT,
    MAX_RETRIES,
];

const TIMEOUT: WarnOnly = WarnOnly {
    option: "timeout",
    why:
        "bakerd has no per-provisioner time limit; a provisioner that hangs holds the build until \
          `bakerd cancel`",
};

const MAX_RETRIES: WarnOnly = WarnOnly {
    option: "max_retries",
    why: "bakerd runs each provisioner once; a failed build is retried with `bakerd resume`, \
          which re-runs the failed step",
};

const SHELL: &[&str] = &[
    "only",
    "except",
    "override",
    "inline",
    "script",
    "scripts",
    "environment_vars",
    "env",
    "execute_command",
    "expect_disconnect",
    "valid_exit_codes",
];

const SHELL_WARN_ONLY: &[WarnOnly] = &[
    WarnOnly {
        option: "pause_before",
        why: "a pause before provisioning cannot change the image",
    },
    WarnOnly {
        option: "start_retry_timeout",
        why: "bakerd retries starting the command with its own timeout",
    },
    TIMEOUT,
    MAX_RETRIES,
];

const FILE: &[&str] = &[
    "only",
    "except",
    "override",
    "source",
    "destination",
    "direction",
];

/// Converts the template's provisioners in order, skipping those `only`/`except` exclude.
pub fn convert(
    sections: &[RawSection],
    builder_name: &str,
    ctx: &FuncContext<'_>,
    options: &Options,
    warnings: &mut Vec<String>,
) -> Result<Vec<Provisioner>, PackerError> {
    let mut out = Vec::new();
    for (index, section) in sections.iter().enumerate() {
        let owner = format!("provisioner #{index} (`{}`)", section.kind);
        let config = with_override(section, builder_name, &owner)?;
        if let Some(reason) = excluded(&Reader::new(&owner, &config), builder_name)? {
            warnings.push(format!("{owner} skipped: {reason}"));
            continue;
        }
        let provisioner = match section.kind.as_str() {
            "shell" => shell(&owner, &config, ctx, index, warnings)?,
            "file" => file(&owner, &config, ctx, index, warnings, options)?,
            kind => {
                return Err(PackerError::UnsupportedProvisioner {
                    index,
                    kind: kind.to_string(),
                })
            }
        };
        out.push(provisioner);
    }
    Ok(out)
}

/// Merges `override.<builder name>` into the provisioner's options, as Packer does.
fn with_override(
    section: &RawSection,
    builder_name: &str,
    owner: &str,
) -> Result<Map<String, Value>, PackerError> {
    let mut config = section.config.clone();
    let overrides = Reader::new(owner, &section.config).object("override")?;
    if let Some(Value::Object(for_builder)) = overrides.and_then(|o| o.get(builder_name)) {
        for (key, value) in for_builder {
            config.insert(key.clone(), value.clone());
        }
    }
    config.remove("override");
    Ok(config)
}

fn excluded(reader: &Reader<'_>, builder_name: &str) -> Result<Option<String>, PackerError> {
    let only = reader.string_list("only")?;
    if reader.has("only") && !only.iter().any(|n| n == builder_name) {
        return Ok(Some(format!(
            "`only` does not list builder `{builder_name}`"
        )));
    }
    if reader
        .string_list("except")?
        .iter()
        .any(|n| n == builder_name)
    {
        return Ok(Some(format!("`except` lists builder `{builder_name}`")));
    }
    Ok(None)
}

/// Renders every option; `execute_command` may keep `{{ .Vars }}` and `{{ .Path }}`.
fn render(
    config: &Map<String, Value>,
    ctx: &FuncContext<'_>,
    index: usize,
) -> Result<Map<String, Value>, PackerError> {
    let mut out = Map::new();
    for (key, value) in config {
        let mut field_ctx = *ctx;
        if key == "execute_command" {
            field_ctx.allowed_fields = &["Vars", "Path"];
        }
        out.insert(
            key.clone(),
            render_tree(value, &field_ctx, &format!("provisioners[{index}].{key}"))?,
        );
    }
    Ok(out)
}

fn shell(
    owner: &str,
    config: &Map<String, Value>,
    ctx: &FuncContext<'_>,
    index: usize,
    warnings: &mut Vec<String>,
) -> Result<Provisioner, PackerError> {
    check_keys(owner, config, SHELL, SHELL_WARN_ONLY, warnings)?;
    let config = render(config, ctx, index)?;
    let reader = Reader::new(owner, &config);
    check_exit_codes(&reader)?;
    let mut environment = reader.string_map("env")?;
    for entry in reader.string_list("environment_vars")? {
        let (name, value) = entry.split_once('=').ok_or_else(|| {
            reader.invalid(
                "environment_vars",
                format!("entry `{entry}` must have the form NAME=value"),
            )
        })?;
        environment.insert(name.to_string(), value.to_string());
    }
    Ok(Provisioner::Shell {
        source: shell_source(&reader)?,
        environment,
        expect_disconnect: reader.bool("expect_disconnect")?.unwrap_or(false),
        execute_command: reader
            .string("execute_command")?
            .map(|command| normalise_execute_command(&reader, &command))
            .transpose()?,
    })
}

/// `valid_exit_codes`: bakerd treats exit code 0 as success and anything else as failure, so only
/// `[0]` (Packer's default) can be honoured; other codes would turn a failure into a success.
fn check_exit_codes(reader: &Reader<'_>) -> Result<(), PackerError> {
    let codes = reader.list("valid_exit_codes")?;
    if codes.is_empty() || codes == [Value::from(0)] {
        return Ok(());
    }
    Err(reader.unsupported(
        "valid_exit_codes",
        " other than [0]: bakerd fails the build on any non-zero exit; end the script with \
         `exit 0` for codes that mean success",
    ))
}

/// Exactly one of `inline`, `script`, `scripts`, as Packer requires.
fn shell_source(reader: &Reader<'_>) -> Result<ShellSource, PackerError> {
    let inline = reader.string_list("inline")?;
    let script = reader.string("script")?;
    let scripts = reader.string_list("scripts")?;
    let given = [!inline.is_empty(), script.is_some(), !scripts.is_empty()];
    match given {
        [true, false, false] => Ok(ShellSource::Inline(inline)),
        [false, true, false] => Ok(ShellSource::Script(script.unwrap_or_default())),
        [false, false, true] => Ok(ShellSource::Scripts(scripts)),
        [false, false, false] => {
            Err(reader.missing("inline", ", `script` or `scripts` (exactly one)"))
        }
        _ => Err(reader.invalid(
            "inline",
            "give exactly one of `inline`, `script`, `scripts`",
        )),
    }
}

/// Rewrites `{{ .Vars }}`/`{{.Path}}` spacing to `{{.Vars}}`/`{{.Path}}`; the command must run the
/// script (`{{.Path}}`), or the provisioner would silently do nothing.
fn normalise_execute_command(reader: &Reader<'_>, command: &str) -> Result<String, PackerError> {
    let mut out = String::new();
    for segment in super::funcs::parse(command)
        .map_err(|e| reader.invalid("execute_command", e.to_string()))?
    {
        match segment {
            super::funcs::Segment::Literal(text) => out.push_str(&text),
            super::funcs::Segment::Action(action) => match action.callee {
                super::funcs::Callee::Field(field) => out.push_str(&format!("{{{{.{field}}}}}")),
                _ => {
                    return Err(reader.invalid(
                        "execute_command",
                        format!("unexpected `{{{{{}}}}}`", action.source),
                    ))
                }
            },
        }
    }
    if !out.contains("{{.Path}}") {
        return Err(reader.invalid(
            "execute_command",
            "must contain `{{ .Path }}` (the script to run)",
        ));
    }
    Ok(out)
}

fn file(
    owner: &str,
    config: &Map<String, Value>,
    ctx: &FuncContext<'_>,
    index: usize,
    warnings: &mut Vec<String>,
    options: &Options,
) -> Result<Provisioner, PackerError> {
    check_keys(owner, config, FILE, COMMON_WARN_ONLY, warnings)?;
    let config = render(config, ctx, index)?;
    let reader = Reader::new(owner, &config);
    if let Some(direction) = reader.string("direction")? {
        if direction != "upload" {
            return Err(reader.unsupported(
                "direction",
                format!(" with value `{direction}`: bakerd only uploads"),
            ));
        }
    }
    let source = reader.required_string("source", " (the local file or directory to upload)")?;
    // `~/` is the user's home directory, as Packer expands it.
    let source = match (source.strip_prefix("~/"), options.env.get("HOME")) {
        (Some(rest), Some(home)) => format!("{}/{rest}", home.trim_end_matches('/')),
        _ => source,
    };
    let destination = reader.required_string("destination", " (the path on the instance)")?;
    let destination = directory_destination(&source, destination, &options.base_dir);
    Ok(Provisioner::File {
        source,
        destination,
    })
}

/// Packer's rule for a directory source: with a trailing `/` its contents go into `destination`;
/// without, the directory itself is created inside `destination` (`dest/<name>`). bakerd's upload
/// always puts a directory's contents into `destination`, so the second case names the inner
/// directory explicitly.
fn directory_destination(source: &str, destination: String, base_dir: &Path) -> String {
    if source.ends_with('/') || !base_dir.join(source).is_dir() {
        return destination;
    }
    let Some(name) = Path::new(source).file_name() else {
        return destination;
    };
    format!(
        "{}/{}",
        destination.trim_end_matches('/'),
        name.to_string_lossy()
    )
}
