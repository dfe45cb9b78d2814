//! The Packer JSON template model: sections, one builder, provisioners, and variable resolution.
//!
//! Assumptions: the legacy JSON template format (not HCL2). Keys starting with `_` are comments, as in
//! Packer. `min_packer_version` is ignored with a warning; `post-processors` is an error.

use super::error::PackerError;
use super::funcs::{self, FuncContext};
use serde_json::{Map, Value};
use std::collections::{BTreeMap, BTreeSet};
use time::OffsetDateTime;

/// A parsed template before any `{{ }}` is evaluated.
#[derive(Debug, Clone)]
pub struct Template {
    /// Declared variables and their raw defaults; `None` marks a required variable (JSON `null`).
    pub variables: BTreeMap<String, Option<String>>,
    /// Variables Packer would redact from its output; bakerd keeps them out of written specs too.
    pub sensitive_variables: BTreeSet<String>,
    pub description: Option<String>,
    pub builder: RawSection,
    pub provisioners: Vec<RawSection>,
    /// Things ignored on purpose, for the user to see.
    pub warnings: Vec<String>,
    /// A `post-processor "manifest"` (HCL2 builds).
    pub manifest: Option<super::manifest::ManifestRequest>,
}

/// A builder or provisioner: its `type` and every other key, still unrendered.
#[derive(Debug, Clone)]
pub struct RawSection {
    pub kind: String,
    pub config: Map<String, Value>,
}

/// True if `text` is a JSON object with a `builders` key, which is how Packer templates look.
pub fn is_packer_template(text: &str) -> bool {
    let trimmed = text.trim_start();
    if !trimmed.starts_with('{') {
        return false;
    }
    matches!(serde_json::from_str::<Value>(trimmed), Ok(Value::Object(map)) if map.contains_key("builders"))
}

/// True if `text` is meant as a Packer JSON template: an object that mentions `"builders"`, even if
/// it is not valid JSON, so a syntax error is reported as JSON with line and column (not as YAML).
pub fn looks_like_json_template(text: &str) -> bool {
    text.trim_start().starts_with('{') && text.contains("\"builders\"")
}

/// Parses the template's JSON and checks its top-level shape.
pub fn parse(text: &str) -> Result<Template, PackerError> {
    let value: Value = serde_json::from_str(text).map_err(|source| PackerError::Syntax {
        line: source.line(),
        column: source.column(),
        source,
    })?;
    let Value::Object(mut root) = value else {
        return Err(PackerError::NotATemplate);
    };
    let mut warnings = Vec::new();
    check_top_level_keys(&root, &mut warnings)?;
    let builders = root.remove("builders").ok_or(PackerError::NotATemplate)?;
    Ok(Template {
        variables: parse_variables(root.remove("variables"))?,
        sensitive_variables: parse_sensitive(root.remove("sensitive-variables"))?,
        description: optional_string(root.remove("description"), "description")?,
        builder: single_builder(builders)?,
        provisioners: parse_provisioners(root.remove("provisioners"))?,
        warnings,
        manifest: None,
    })
}

fn check_top_level_keys(
    root: &Map<String, Value>,
    warnings: &mut Vec<String>,
) -> Result<(), PackerError> {
    const KNOWN: &[&str] = &[
        "variables",
        "sensitive-variables",
        "builders",
        "provisioners",
        "description",
    ];
    for (key, value) in root {
        match key.as_str() {
            k if KNOWN.contains(&k) || k.starts_with('_') => {}
            "min_packer_version" => warnings.push(format!(
                "min_packer_version {value} ignored: bakerd is not Packer and checks the template itself"
            )),
            "post-processors" => return Err(PackerError::PostProcessorsUnsupported),
            other => return Err(PackerError::UnknownTopLevelKey { key: other.to_string() }),
        }
    }
    Ok(())
}

fn wrong_shape(location: &str, expected: &'static str) -> PackerError {
    PackerError::WrongShape {
        location: location.to_string(),
        expected,
    }
}

fn parse_variables(value: Option<Value>) -> Result<BTreeMap<String, Option<String>>, PackerError> {
    let Some(value) = value else {
        return Ok(BTreeMap::new());
    };
    let Value::Object(map) = value else {
        return Err(wrong_shape(
            "variables",
            "an object of name to default value",
        ));
    };
    map.into_iter()
        .map(|(name, default)| match default {
            Value::Null => Ok((name, None)),
            Value::String(s) => Ok((name, Some(s))),
            _ => Err(PackerError::WrongShape {
                location: format!("variables.{name}"),
                expected: "a string, or null for a required variable",
            }),
        })
        .collect()
}

fn parse_sensitive(value: Option<Value>) -> Result<BTreeSet<String>, PackerError> {
    match value {
        None => Ok(BTreeSet::new()),
        Some(Value::Array(items)) => items
            .into_iter()
            .map(|item| match item {
                Value::String(s) => Ok(s),
                _ => Err(wrong_shape(
                    "sensitive-variables",
                    "a list of variable names",
                )),
            })
            .collect(),
        Some(_) => Err(wrong_shape(
            "sensitive-variables",
            "a list of variable names",
        )),
    }
}

fn optional_string(value: Option<Value>, location: &str) -> Result<Option<String>, PackerError> {
    match value {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(wrong_shape(location, "a string")),
    }
}

fn single_builder(value: Value) -> Result<RawSection, PackerError> {
    let Value::Array(mut builders) = value else {
        return Err(wrong_shape("builders", "a list of builder objects"));
    };
    if builders.len() != 1 {
        return Err(PackerError::BuilderCount {
            count: builders.len(),
        });
    }
    let section = raw_section(builders.remove(0), "builders[0]")?;
    match section.kind.as_str() {
        "aliyun" | "alicloud-ecs" => Ok(section),
        other => Err(PackerError::UnknownBuilderType {
            kind: other.to_string(),
        }),
    }
}

fn parse_provisioners(value: Option<Value>) -> Result<Vec<RawSection>, PackerError> {
    match value {
        None => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .into_iter()
            .enumerate()
            .map(|(i, item)| raw_section(item, &format!("provisioners[{i}]")))
            .collect(),
        Some(_) => Err(wrong_shape("provisioners", "a list of provisioner objects")),
    }
}

/// Splits off `type` and drops `_comment` keys.
fn raw_section(value: Value, location: &str) -> Result<RawSection, PackerError> {
    let Value::Object(mut config) = value else {
        return Err(wrong_shape(location, "an object with a `type`"));
    };
    let kind = match config.remove("type") {
        Some(Value::String(kind)) => kind,
        _ => return Err(wrong_shape(&format!("{location}.type"), "a string")),
    };
    config.retain(|key, _| !key.starts_with('_'));
    Ok(RawSection { kind, config })
}

/// Variable values after overrides and rendering, and where env-sourced ones came from.
#[derive(Debug, Clone, Default)]
pub struct Variables {
    pub values: BTreeMap<String, String>,
    /// Variable name → environment variable its value is exactly (`{{env `X`}}`, not overridden).
    pub env_sources: BTreeMap<String, String>,
}

/// Resolves variables: overrides win, then defaults rendered with `env` available, in dependency
/// order (defaults may use `{{user}}` of other variables, as recent Packer allows).
pub fn resolve_variables(
    template: &Template,
    overrides: &BTreeMap<String, String>,
    env: &BTreeMap<String, String>,
    now: OffsetDateTime,
) -> Result<Variables, PackerError> {
    let mut resolver = Resolver {
        template,
        overrides,
        env,
        now,
        out: Variables::default(),
        in_progress: BTreeSet::new(),
        total_bytes: 0,
    };
    for name in template.variables.keys() {
        resolver.resolve(name)?;
    }
    Ok(resolver.out)
}

struct Resolver<'a> {
    template: &'a Template,
    overrides: &'a BTreeMap<String, String>,
    env: &'a BTreeMap<String, String>,
    now: OffsetDateTime,
    out: Variables,
    in_progress: BTreeSet<String>,
    /// Bytes of all values so far, against [`MAX_VARIABLES_BYTES`].
    total_bytes: usize,
}

/// Bound on all variable values together: each is at most [`funcs::MAX_RENDERED_BYTES`], and many
/// variables copying one large value must not add up to gigabytes either.
pub const MAX_VARIABLES_BYTES: usize = 4 * funcs::MAX_RENDERED_BYTES;

impl Resolver<'_> {
    fn resolve(&mut self, name: &str) -> Result<(), PackerError> {
        if self.out.values.contains_key(name) {
            return Ok(());
        }
        if let Some(value) = self.overrides.get(name) {
            self.out.values.insert(name.to_string(), value.clone());
            return Ok(());
        }
        let Some(default) = self.template.variables.get(name) else {
            return Ok(()); // rendering reports the undeclared reference with its location
        };
        let Some(raw) = default else {
            return Err(PackerError::RequiredVariableUnset {
                name: name.to_string(),
            });
        };
        if !self.in_progress.insert(name.to_string()) {
            return Err(PackerError::VariableCycle {
                name: name.to_string(),
            });
        }
        for dependency in funcs::user_refs(raw) {
            self.resolve(&dependency)?;
        }
        self.in_progress.remove(name);
        let ctx = FuncContext {
            env: Some(self.env),
            user: &self.out.values,
            now: self.now,
            allowed_fields: &[],
        };
        let value = funcs::render(raw, &ctx).map_err(|source| PackerError::Function {
            location: format!("variables.{name}"),
            source,
        })?;
        if let Some(source) = self.env_source_of(raw) {
            self.out.env_sources.insert(name.to_string(), source);
        }
        self.total_bytes += value.len();
        if self.total_bytes > MAX_VARIABLES_BYTES {
            return Err(PackerError::ValueTooLarge {
                location: format!("variables.{name}"),
                limit: MAX_VARIABLES_BYTES,
            });
        }
        self.out.values.insert(name.to_string(), value);
        Ok(())
    }

    fn env_source_of(&self, raw: &str) -> Option<String> {
        if let Some(env_name) = funcs::sole_call_arg(raw, "env") {
            return Some(env_name);
        }
        let var = funcs::sole_call_arg(raw, "user")?;
        self.out.env_sources.get(&var).cloned()
    }
}

/// Renders every string inside `value` (objects, lists, nested) with `ctx`.
pub fn render_tree(
    value: &Value,
    ctx: &FuncContext<'_>,
    location: &str,
) -> Result<Value, PackerError> {
    Ok(match value {
        Value::String(s) => {
            Value::String(
                funcs::render(s, ctx).map_err(|source| PackerError::Function {
                    location: location.to_string(),
                    source,
                })?,
            )
        }
        Value::Array(items) => Value::Array(
            items
                .iter()
                .enumerate()
                .map(|(i, item)| render_tree(item, ctx, &format!("{location}[{i}]")))
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| Ok((k.clone(), render_tree(v, ctx, &format!("{location}.{k}"))?)))
                .collect::<Result<_, PackerError>>()?,
        ),
        other => other.clone(),
    })
}
