//! Variables of YAML specs: `vars:` declares them (with a default, or `~` for required), the
//! spec uses them as `{{var.NAME}}`, and a run sets them with `--var NAME=VALUE`, `--var-file F`
//! (a YAML or JSON mapping) or the environment (`BAKERD_VAR_NAME`).
//!
//! Precedence, lowest first: the default in `vars:`, `BAKERD_VAR_NAME`, `--var-file` (later files
//! win), `--var` (later wins) — as Terraform orders its own.
//!
//! Guarantees: every `{{var.NAME}}` is replaced before the YAML is parsed, so the spec hash covers
//! the values; a name set on the command line that the spec does not declare, a required variable
//! left unset, and a reference to an undeclared variable are errors naming the variable (and the
//! line). The `vars:` block itself is removed before the spec is parsed. Caveat: a value lands verbatim in the YAML text; a value with `: ` or ` #` belongs in a
//! quoted field.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Prefix of the environment variables that set spec variables.
pub const ENV_PREFIX: &str = "BAKERD_VAR_";

/// Why the variables of a spec could not be resolved.
#[derive(Debug, thiserror::Error)]
pub enum VarsError {
    #[error("`--var {0}` is not NAME=VALUE")]
    BadArg(String),
    #[error("cannot read --var-file {}: {source}", path.display())]
    ReadFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("--var-file {}: not a mapping of variable names to values ({detail})", path.display())]
    BadFile { path: PathBuf, detail: String },
    #[error(
        "{origin} sets `{name}`, which the spec does not declare (declared in `vars:`: {declared})"
    )]
    Undeclared {
        origin: String,
        name: String,
        declared: String,
    },
    #[error("variable `{name}` is required (`vars: {{{name}: ~}}`): set it with --var {name}=VALUE, a --var-file, or {ENV_PREFIX}{name}")]
    Missing { name: String },
    #[error("line {line}: `{{{{var.{name}}}}}` refers to a variable the spec does not declare in `vars:`")]
    UnknownReference { line: usize, name: String },
    #[error("`vars.{name}`: the value must be a string, number or boolean (or ~ for required)")]
    BadDefault { name: String },
    #[error("variable `{name}` from {origin}: a value cannot span lines")]
    Multiline { name: String, origin: String },
}

/// Where variable values come from besides the spec.
pub struct VarInputs<'a> {
    pub args: &'a [String],
    pub files: &'a [PathBuf],
    /// `(name, value)` of the environment (only `BAKERD_VAR_*` are looked at).
    pub env: Vec<(String, String)>,
}

/// Replaces every `{{var.NAME}}` of `text`; returns the text unchanged when it declares and uses
/// no variables and none are given.
pub fn substitute(text: &str, inputs: &VarInputs<'_>) -> Result<String, VarsError> {
    let declared = declared(text)?;
    let mut values: BTreeMap<String, (Option<String>, String)> = declared
        .iter()
        .map(|(k, v)| (k.clone(), (v.clone(), "the default in `vars:`".to_string())))
        .collect();
    let mut set = |name: String, value: String, origin: String| -> Result<(), VarsError> {
        match values.get_mut(&name) {
            Some(slot) => {
                *slot = (Some(value), origin);
                Ok(())
            }
            None => Err(VarsError::Undeclared {
                origin,
                name,
                declared: names(&declared),
            }),
        }
    };
    for (key, value) in &inputs.env {
        if let Some(name) = key.strip_prefix(ENV_PREFIX) {
            if declared.contains_key(name) {
                set(name.to_string(), value.clone(), key.clone())?;
            }
        }
    }
    for file in inputs.files {
        for (name, value) in read_file(file)? {
            set(name, value, format!("--var-file {}", file.display()))?;
        }
    }
    for arg in inputs.args {
        let (name, value) = arg
            .split_once('=')
            .ok_or_else(|| VarsError::BadArg(arg.clone()))?;
        set(name.to_string(), value.to_string(), format!("--var {name}"))?;
    }
    let mut resolved = BTreeMap::new();
    for (name, (value, origin)) in values {
        let value = value.ok_or_else(|| VarsError::Missing { name: name.clone() })?;
        if value.contains('\n') {
            return Err(VarsError::Multiline { name, origin });
        }
        resolved.insert(name, value);
    }
    Ok(blank_declarations(&replace_references(text, &resolved)?))
}

/// The spec without its top-level `vars:` block (the spec model does not know it), each of its
/// lines left empty so that the parser's line numbers still match the file.
fn blank_declarations(text: &str) -> String {
    let mut inside = false;
    let lines: Vec<&str> = text
        .split('\n')
        .map(|line| {
            let top_level = !line.starts_with([' ', '\t', '#']) && !line.trim().is_empty();
            if top_level {
                inside = line.starts_with("vars:");
            }
            if inside {
                ""
            } else {
                line
            }
        })
        .collect();
    lines.join("\n")
}

fn names(declared: &BTreeMap<String, Option<String>>) -> String {
    if declared.is_empty() {
        return "none".into();
    }
    declared.keys().cloned().collect::<Vec<_>>().join(", ")
}

/// The `vars:` mapping of the spec (name → default; `None` = required). A spec the YAML parser
/// refuses declares nothing here: the spec parser reports it with its location.
fn declared(text: &str) -> Result<BTreeMap<String, Option<String>>, VarsError> {
    // `{{var.x}}` at the start of a plain value would read as a flow mapping: neutralise the
    // references first, the declarations are all that is read here.
    let neutral = text.replace("{{", "x_").replace("}}", "_x");
    let Ok(serde_yaml::Value::Mapping(top)) = serde_yaml::from_str::<serde_yaml::Value>(&neutral)
    else {
        return Ok(BTreeMap::new());
    };
    let Some(serde_yaml::Value::Mapping(vars)) = top.get("vars") else {
        return Ok(BTreeMap::new());
    };
    let mut out = BTreeMap::new();
    for (key, value) in vars {
        let name = scalar(key).unwrap_or_default();
        let default = match value {
            serde_yaml::Value::Null => None,
            other => Some(scalar(other).ok_or(VarsError::BadDefault { name: name.clone() })?),
        };
        out.insert(name, default);
    }
    Ok(out)
}

fn scalar(value: &serde_yaml::Value) -> Option<String> {
    match value {
        serde_yaml::Value::String(s) => Some(s.clone()),
        serde_yaml::Value::Number(n) => Some(n.to_string()),
        serde_yaml::Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn read_file(path: &Path) -> Result<Vec<(String, String)>, VarsError> {
    let text = std::fs::read_to_string(path).map_err(|source| VarsError::ReadFile {
        path: path.to_path_buf(),
        source,
    })?;
    let bad = |detail: String| VarsError::BadFile {
        path: path.to_path_buf(),
        detail,
    };
    // JSON is YAML, so one parser reads both.
    let value: serde_yaml::Value = serde_yaml::from_str(&text).map_err(|e| bad(e.to_string()))?;
    let serde_yaml::Value::Mapping(map) = value else {
        return Err(bad("the top level is not a mapping".into()));
    };
    map.iter()
        .map(|(k, v)| match (scalar(k), scalar(v)) {
            (Some(k), Some(v)) => Ok((k, v)),
            (k, _) => Err(bad(format!(
                "the value of `{}` is not a string, number or boolean",
                k.unwrap_or_default()
            ))),
        })
        .collect()
}

fn replace_references(text: &str, values: &BTreeMap<String, String>) -> Result<String, VarsError> {
    const OPEN: &str = "{{var.";
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find(OPEN) {
        let after = &rest[start + OPEN.len()..];
        let Some(end) = after.find("}}") else { break };
        let name = after[..end].trim();
        let line = text[..text.len() - rest.len() + start]
            .lines()
            .count()
            .max(1);
        let value = values
            .get(name)
            .ok_or_else(|| VarsError::UnknownReference {
                line,
                name: name.to_string(),
            })?;
        out.push_str(&rest[..start]);
        out.push_str(value);
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(text: &str, args: &[&str], env: &[(&str, &str)]) -> Result<String, VarsError> {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        let inputs = VarInputs {
            args: &args,
            files: &[],
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        };
        substitute(text, &inputs)
    }

    const SPEC: &str = "vars:\n  app: web\n  env: ~\nimage:\n  name: {{var.app}}-{{var.env}}\n";

    #[test]
    fn defaults_env_and_var_args_apply_in_that_order() {
        let out = run(
            SPEC,
            &["env=prod"],
            &[("BAKERD_VAR_app", "api"), ("BAKERD_VAR_env", "dev")],
        )
        .unwrap();
        assert!(out.contains("name: api-prod"), "{out}");
    }

    #[test]
    fn a_required_variable_left_unset_is_named_with_the_ways_to_set_it() {
        let err = run(SPEC, &[], &[]).unwrap_err().to_string();
        assert!(
            err.contains("`env` is required") && err.contains("BAKERD_VAR_env"),
            "{err}"
        );
    }

    #[test]
    fn an_undeclared_var_argument_and_an_unknown_reference_are_refused() {
        let err = run(SPEC, &["env=x", "nope=1"], &[])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("--var nope") && err.contains("app, env"),
            "{err}"
        );
        let err = run("image:\n  name: {{var.ghost}}\n", &[], &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("line 2") && err.contains("ghost"), "{err}");
    }
}
