//! The conversion pipeline: parse → variables (with overrides) → builder → provisioners → [`Draft`].

use super::draft::{Credential, Draft};
use super::error::PackerError;
use super::funcs::{self, FuncContext};
use super::options::Reader;
use super::template::{self, Template, Variables};
use super::{alicloud, provisioners, seed};
use serde_json::{Map, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use time::OffsetDateTime;

/// Inputs of a conversion besides the template text.
///
/// Why `env` and `now` are passed in: conversion is pure, so tests inject both and never touch the
/// process environment or the clock.
#[derive(Debug, Clone)]
pub struct Options {
    /// `-var name=value` overrides, applied after `var_files` (later ones win).
    pub vars: Vec<(String, String)>,
    /// `-var-file` paths: JSON objects of variable name to string value, applied in order.
    pub var_files: Vec<PathBuf>,
    /// The environment `{{env}}` and the builders' env-var fallbacks read.
    pub env: BTreeMap<String, String>,
    /// The run's time: every `{{timestamp}}`/`{{isotime}}` in the template shows this one instant.
    pub now: OffsetDateTime,
    /// The template's directory: relative `script`/`source` paths resolve against it.
    pub base_dir: PathBuf,
    /// `--only TYPE.NAME` (HCL2): which `alicloud-ecs` source to build when there are several.
    pub only: Vec<String>,
}

impl Options {
    /// Options for a real run: the process environment and the current time.
    pub fn from_process(
        vars: Vec<(String, String)>,
        var_files: Vec<PathBuf>,
        base_dir: PathBuf,
    ) -> Self {
        Options {
            vars,
            var_files,
            // vars_os: std::env::vars panics on a non-UTF-8 variable; such variables are skipped.
            env: std::env::vars_os()
                .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
                .collect(),
            now: OffsetDateTime::now_utc(),
            base_dir,
            only: Vec::new(),
        }
    }
}

/// Parses a `-var` argument `name=value` (usable as a clap value parser).
pub fn parse_var_arg(arg: &str) -> Result<(String, String), PackerError> {
    match arg.split_once('=') {
        Some((name, value)) if !name.is_empty() => Ok((name.to_string(), value.to_string())),
        _ => Err(PackerError::BadVarArgument {
            arg: arg.to_string(),
        }),
    }
}

/// Everything a builder mapping reads: its rendered options and how to trace credentials.
pub struct BuilderInput<'a> {
    /// `builder `alicloud-ecs`` — how errors name the builder.
    pub owner: String,
    /// Options after `{{ }}` rendering.
    pub config: &'a Map<String, Value>,
    /// Options as written, to see whether a credential is exactly `{{user `v`}}` of an env variable.
    pub raw: &'a Map<String, Value>,
    pub variables: &'a Variables,
    pub env: &'a BTreeMap<String, String>,
    pub ctx: FuncContext<'a>,
    /// Whether the template has provisioners (a `none` communicator cannot run them).
    pub has_provisioners: bool,
    /// The template's directory, for files options name (`user_data_file`).
    pub base_dir: &'a std::path::Path,
}

impl<'a> BuilderInput<'a> {
    pub fn reader(&self) -> Reader<'_> {
        Reader::new(&self.owner, self.config)
    }

    /// A non-empty environment variable.
    pub fn env_value(&self, name: &str) -> Option<String> {
        self.env.get(name).filter(|v| !v.is_empty()).cloned()
    }

    /// A credential option, falling back to `fallback_env` when unset or empty (as Packer does).
    pub fn credential(
        &self,
        key: &str,
        fallback_env: &str,
    ) -> Result<Option<Credential>, PackerError> {
        if let Some(value) = self.reader().string(key)? {
            return Ok(Some(Credential {
                value,
                env: self.traced_env(key),
            }));
        }
        Ok(self.env_value(fallback_env).map(|value| Credential {
            value,
            env: Some(fallback_env.to_string()),
        }))
    }

    pub fn required_credential(
        &self,
        key: &str,
        fallback_env: &str,
    ) -> Result<Credential, PackerError> {
        self.credential(key, fallback_env)?.ok_or_else(|| {
            self.reader()
                .missing(key, format!(" (or environment variable {fallback_env})"))
        })
    }

    /// The env var an option's value is exactly, through `{{user `v`}}` and v's `{{env `X`}}`.
    fn traced_env(&self, key: &str) -> Option<String> {
        let raw = self.raw.get(key)?.as_str()?;
        let variable = funcs::sole_call_arg(raw, "user")?;
        self.variables.env_sources.get(&variable).cloned()
    }
}

/// Converts JSON template text to a [`Draft`] plus warnings about what was ignored on purpose.
pub fn to_draft(text: &str, options: &Options) -> Result<(Draft, Vec<String>), PackerError> {
    let template = template::parse(text)?;
    let overrides = load_overrides(&template, options)?;
    let variables = template::resolve_variables(&template, &overrides, &options.env, options.now)?;
    draft_from(&template, variables, options)
}

/// The common core of both formats: a parsed [`Template`] with resolved variables becomes a
/// [`Draft`]. A `{{user `x`}}` of an undeclared variable renders empty with a warning, as Packer
/// renders it.
pub fn draft_from(
    template: &Template,
    mut variables: Variables,
    options: &Options,
) -> Result<(Draft, Vec<String>), PackerError> {
    let mut warnings = template.warnings.clone();
    for name in undeclared_refs(template, &variables) {
        warnings.push(format!(
            "`{{{{user `{name}`}}}}` refers to a variable the template does not declare: it renders empty, as in Packer"
        ));
        variables.values.insert(name, String::new());
    }
    let ctx = FuncContext {
        env: None,
        user: &variables.values,
        now: options.now,
        allowed_fields: &[],
    };
    let builder_name = builder_name(template);
    let provisioners = provisioners::convert(
        &template.provisioners,
        &builder_name,
        &ctx,
        options,
        &mut warnings,
    )?;
    let raw = &template.builder.config;
    let rendered = template::render_tree(&Value::Object(raw.clone()), &ctx, "builders[0]")?;
    let Value::Object(config) = rendered else {
        unreachable!("rendering an object yields an object")
    };
    let input = BuilderInput {
        owner: format!("builder `{}`", template.builder.kind),
        config: &config,
        raw,
        variables: &variables,
        env: &options.env,
        ctx,
        has_provisioners: !provisioners.is_empty(),
        base_dir: &options.base_dir,
    };
    let mut draft = match template.builder.kind.as_str() {
        "aliyun" => seed::convert(&input, &mut warnings)?,
        _ => alicloud::convert(&input, &mut warnings)?,
    };
    draft.provisioners = provisioners;
    Ok((draft, warnings))
}

/// Variables read with `{{user}}` anywhere in the builder or provisioners but never declared.
fn undeclared_refs(template: &Template, variables: &Variables) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let sections = std::iter::once(&template.builder).chain(&template.provisioners);
    for section in sections {
        for_each_string(&Value::Object(section.config.clone()), &mut |text| {
            names.extend(
                funcs::user_refs(text)
                    .into_iter()
                    .filter(|name| !variables.values.contains_key(name)),
            );
        });
    }
    names
}

fn for_each_string(value: &Value, f: &mut impl FnMut(&str)) {
    match value {
        Value::String(s) => f(s),
        Value::Array(items) => items.iter().for_each(|item| for_each_string(item, f)),
        Value::Object(map) => map.values().for_each(|item| for_each_string(item, f)),
        _ => {}
    }
}

/// Provisioners' `only`/`except` name builders by `name`, defaulting to the type.
fn builder_name(template: &Template) -> String {
    match template.builder.config.get("name") {
        Some(Value::String(name)) if !name.is_empty() => name.clone(),
        _ => template.builder.kind.clone(),
    }
}

/// `-var-file`s in order, then `-var`s; every name must be declared in `variables`.
fn load_overrides(
    template: &Template,
    options: &Options,
) -> Result<BTreeMap<String, String>, PackerError> {
    let mut overrides = BTreeMap::new();
    for path in &options.var_files {
        for (name, value) in read_var_file(path)? {
            check_declared(template, &name, || format!("-var-file {}", path.display()))?;
            overrides.insert(name, value);
        }
    }
    for (name, value) in &options.vars {
        check_declared(template, name, || "-var".to_string())?;
        overrides.insert(name.clone(), value.clone());
    }
    Ok(overrides)
}

fn check_declared(
    template: &Template,
    name: &str,
    origin: impl Fn() -> String,
) -> Result<(), PackerError> {
    if template.variables.contains_key(name) {
        return Ok(());
    }
    Err(PackerError::UndeclaredVariable {
        name: name.to_string(),
        origin: origin(),
    })
}

fn read_var_file(path: &PathBuf) -> Result<BTreeMap<String, String>, PackerError> {
    let text = std::fs::read_to_string(path).map_err(|source| PackerError::VarFileRead {
        path: path.clone(),
        source,
    })?;
    let invalid = |detail: String| PackerError::VarFileInvalid {
        path: path.clone(),
        detail,
    };
    let value: Value = serde_json::from_str(&text).map_err(|e| invalid(e.to_string()))?;
    let Value::Object(map) = value else {
        return Err(invalid("top level is not an object".to_string()));
    };
    map.into_iter()
        .map(|(name, value)| match value {
            Value::String(s) => Ok((name, s)),
            _ => Err(invalid(format!("the value of `{name}` is not a string"))),
        })
        .collect()
}
