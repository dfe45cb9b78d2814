//! HCL2 input variables: declarations, where values come from (in Packer's order), type
//! conversion, validation, and which environment variable a value is exactly (for credentials).
//!
//! Precedence, lowest first, as Packer documents it: the `default`, `PKR_VAR_<name>`, the
//! directory's `*.auto.pkrvars.hcl` files (by name), `--var-file`s in order, `--var`s in order.

use super::convert::Options;
use super::error::PackerError;
use super::hcl_funcs::{self, json_size, MAX_VALUE_BYTES};
use hcl::eval::{Context, Evaluate};
use hcl::{Expression, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// A `variable "name" { ... }` block, unevaluated.
#[derive(Debug, Clone)]
pub struct VarDecl {
    pub name: String,
    pub file: PathBuf,
    pub type_expr: Option<Expression>,
    pub default: Option<Expression>,
    pub sensitive: bool,
    /// `(condition, error_message)` of each `validation` block.
    pub validations: Vec<(Expression, Expression)>,
}

/// The variables' final values and what the credential tracing needs.
#[derive(Debug, Clone, Default)]
pub struct Resolved {
    pub values: hcl::Map<String, Value>,
    /// Variable → the environment variable its value is exactly (`default = env("X")`, not overridden).
    pub env_sources: BTreeMap<String, String>,
    pub sensitive: BTreeSet<String>,
}

/// A `*.pkrvars.hcl` (or JSON var file, named `*.json`): variable name → value, read like a template file.
pub use super::hcl2::HclFile as VarFile;

fn eval_error(location: String, detail: impl ToString) -> PackerError {
    PackerError::HclEval {
        location,
        detail: detail.to_string(),
    }
}

/// Evaluates an expression and refuses a result larger than [`MAX_VALUE_BYTES`].
pub fn evaluate(expr: &Expression, ctx: &Context, location: &str) -> Result<Value, PackerError> {
    let value = expr
        .evaluate(ctx)
        .map_err(|e| eval_error(location.to_string(), e))?;
    let size = json_size(&value);
    if size > MAX_VALUE_BYTES {
        return Err(PackerError::ValueTooLarge {
            location: location.to_string(),
            limit: MAX_VALUE_BYTES,
        });
    }
    Ok(value)
}

/// Resolves every declared variable (see the module docs for the order).
pub fn resolve(
    decls: &[VarDecl],
    auto_files: &[VarFile],
    options: &Options,
    warnings: &mut Vec<String>,
) -> Result<Resolved, PackerError> {
    let ctx = hcl_funcs::context(&options.base_dir);
    let by_name: BTreeMap<&str, &VarDecl> = decls.iter().map(|d| (d.name.as_str(), d)).collect();
    let mut out = Resolved::default();
    let mut set: BTreeMap<String, Value> = BTreeMap::new();
    for decl in decls {
        if let Some(default) = &decl.default {
            let location = format!("variable \"{}\" default", decl.name);
            set.insert(decl.name.clone(), evaluate(default, &ctx, &location)?);
            if let Some(env) = env_source(default) {
                out.env_sources.insert(decl.name.clone(), env);
            }
        }
        if decl.sensitive {
            out.sensitive.insert(decl.name.clone());
        }
    }
    let mut assign = |name: &str, value: Value, out: &mut Resolved| {
        out.env_sources.remove(name);
        set.insert(name.to_string(), value);
    };
    for (key, text) in &options.env {
        if let Some(name) = key.strip_prefix("PKR_VAR_") {
            if let Some(decl) = by_name.get(name) {
                assign(
                    name,
                    from_text(decl, text, &format!("PKR_VAR_{name}"))?,
                    &mut out,
                );
            }
        }
    }
    let files = load_var_files(auto_files, &options.var_files)?;
    for file in &files {
        for (name, expr) in var_file_entries(file)? {
            let origin = format!("{}: {name}", file.path.display());
            if !by_name.contains_key(name.as_str()) {
                warnings.push(format!(
                    "{origin} sets a variable the template does not declare; ignored"
                ));
                continue;
            }
            assign(&name, evaluate(&expr, &ctx, &origin)?, &mut out);
        }
    }
    for (name, text) in &options.vars {
        let decl = by_name
            .get(name.as_str())
            .ok_or_else(|| PackerError::UndeclaredVariable {
                name: name.clone(),
                origin: "--var".to_string(),
            })?;
        assign(
            name,
            from_text(decl, text, &format!("--var {name}"))?,
            &mut out,
        );
    }
    for decl in decls {
        let value = set
            .remove(&decl.name)
            .ok_or_else(|| PackerError::RequiredVariableUnset {
                name: decl.name.clone(),
            })?;
        let value = convert_type(decl, value)?;
        validate(decl, &value, &ctx)?;
        out.values.insert(decl.name.clone(), value);
    }
    Ok(out)
}

/// Reads the directory's auto var files, then `--var-file`s (HCL, or JSON when named `*.json`).
fn load_var_files(auto_files: &[VarFile], paths: &[PathBuf]) -> Result<Vec<VarFile>, PackerError> {
    let mut files: Vec<VarFile> = auto_files
        .iter()
        .map(|f| VarFile {
            path: f.path.clone(),
            text: f.text.clone(),
        })
        .collect();
    for path in paths {
        let text = std::fs::read_to_string(path).map_err(|source| PackerError::VarFileRead {
            path: path.clone(),
            source,
        })?;
        files.push(VarFile {
            path: path.clone(),
            text,
        });
    }
    Ok(files)
}

/// A var file's `name = value` entries (JSON var files: the object's members).
fn var_file_entries(file: &VarFile) -> Result<Vec<(String, Expression)>, PackerError> {
    let invalid = |detail: String| PackerError::VarFileInvalid {
        path: file.path.clone(),
        detail,
    };
    if file.path.extension().is_some_and(|e| e == "json") {
        let value: serde_json::Value =
            serde_json::from_str(&file.text).map_err(|e| invalid(e.to_string()))?;
        let serde_json::Value::Object(map) = value else {
            return Err(invalid("top level is not an object".into()));
        };
        return map
            .into_iter()
            .map(|(k, v)| {
                let expr = hcl::to_expression(&v).map_err(|e| invalid(e.to_string()))?;
                Ok((k, expr))
            })
            .collect();
    }
    let body = hcl::parse(&file.text).map_err(|e| invalid(e.to_string()))?;
    if body.blocks().next().is_some() {
        return Err(invalid(
            "a variable file holds only `name = value` lines, no blocks".into(),
        ));
    }
    Ok(body
        .attributes()
        .map(|a| (a.key.to_string(), a.expr.clone()))
        .collect())
}

/// A value given as text (`--var`, `PKR_VAR_`): a string variable takes it as is; other types
/// parse it as an HCL expression (`--var 'zones=["a","b"]'`), as Packer does.
fn from_text(decl: &VarDecl, text: &str, origin: &str) -> Result<Value, PackerError> {
    if matches!(type_name(decl).as_deref(), None | Some("string")) {
        return Ok(Value::from(text));
    }
    let body = hcl::parse(&format!("v = {text}\n"))
        .map_err(|e| eval_error(origin.to_string(), format!("`{text}` is not a value: {e}")))?;
    let expr = body
        .attributes()
        .next()
        .map(|a| a.expr.clone())
        .ok_or_else(|| eval_error(origin.to_string(), "empty value"))?;
    evaluate(&expr, &Context::new(), origin)
}

/// The variable's type keyword (`string`, `number`, `bool`, `list`, `map`, …), if given.
fn type_name(decl: &VarDecl) -> Option<String> {
    match decl.type_expr.as_ref()? {
        Expression::Variable(v) => Some(v.to_string()),
        Expression::FuncCall(call) => Some(call.name.name.to_string()),
        _ => Some("any".to_string()),
    }
}

/// Converts `value` to the declared type the way HCL's type conversion does for primitives
/// (`"22"` → 22 for `number`); collections are checked element by element.
fn convert_type(decl: &VarDecl, value: Value) -> Result<Value, PackerError> {
    let Some(type_expr) = &decl.type_expr else {
        return Ok(value);
    };
    convert_to(type_expr, value).map_err(|detail| PackerError::VariableType {
        name: decl.name.clone(),
        detail,
    })
}

fn convert_to(type_expr: &Expression, value: Value) -> Result<Value, String> {
    match type_expr {
        Expression::Variable(v) => convert_primitive(v.as_str(), value),
        Expression::FuncCall(call) => {
            let element = call.args.first();
            match (call.name.name.as_str(), value, element) {
                ("list" | "set", Value::Array(items), Some(t)) => items
                    .into_iter()
                    .map(|item| convert_to(t, item))
                    .collect::<Result<_, _>>()
                    .map(Value::Array),
                ("map", Value::Object(map), Some(t)) => map
                    .into_iter()
                    .map(|(k, v)| Ok((k, convert_to(t, v)?)))
                    .collect::<Result<_, String>>()
                    .map(Value::Object),
                ("list" | "set" | "tuple", other, _) => {
                    Err(format!("expected a list, got `{other}`"))
                }
                ("map" | "object", other @ Value::Object(_), _) => Ok(other),
                ("map" | "object", other, _) => Err(format!("expected an object, got `{other}`")),
                (_, other, _) => Ok(other),
            }
        }
        _ => Ok(value),
    }
}

fn convert_primitive(kind: &str, value: Value) -> Result<Value, String> {
    match (kind, value) {
        ("string", Value::String(s)) => Ok(Value::String(s)),
        ("string", Value::Number(n)) => Ok(Value::from(n.to_string())),
        ("string", Value::Bool(b)) => Ok(Value::from(b.to_string())),
        ("number", Value::Number(n)) => Ok(Value::Number(n)),
        ("number", Value::String(s)) => s
            .trim()
            .parse::<f64>()
            .ok()
            .and_then(hcl::Number::from_f64)
            .map(Value::Number)
            .ok_or_else(|| format!("`{s}` is not a number")),
        ("bool", Value::Bool(b)) => Ok(Value::Bool(b)),
        ("bool", Value::String(s)) if s == "true" || s == "false" => Ok(Value::Bool(s == "true")),
        ("any", value) => Ok(value),
        (kind, value) => Err(format!("expected a {kind}, got `{value}`")),
    }
}

/// Runs the `validation` blocks with `var.<name>` set; a false condition is an error carrying the
/// template's own `error_message`.
fn validate(decl: &VarDecl, value: &Value, base: &Context) -> Result<(), PackerError> {
    if decl.validations.is_empty() {
        return Ok(());
    }
    let mut ctx = base.clone();
    let mut var = hcl::Map::new();
    var.insert(decl.name.clone(), value.clone());
    ctx.declare_var("var", Value::Object(var));
    for (condition, message) in &decl.validations {
        let location = format!("variable \"{}\" validation", decl.name);
        let ok = evaluate(condition, &ctx, &location)?;
        if ok != Value::Bool(true) {
            let message = evaluate(message, &ctx, &location)?;
            return Err(PackerError::VariableValidation {
                name: decl.name.clone(),
                message: message
                    .as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| message.to_string()),
            });
        }
    }
    Ok(())
}

/// `env("X")` or `"${env("X")}"`: the value is exactly that environment variable.
fn env_source(expr: &Expression) -> Option<String> {
    match expr {
        Expression::FuncCall(call) if call.name.name.as_str() == "env" && call.args.len() == 1 => {
            match &call.args[0] {
                Expression::String(name) => Some(name.clone()),
                _ => None,
            }
        }
        Expression::TemplateExpr(template) => {
            let text = template.to_string();
            let inner = text
                .trim_matches('"')
                .strip_prefix("${")?
                .strip_suffix('}')?
                .trim()
                .strip_prefix("env(\"")?
                .strip_suffix("\")")?;
            (!inner.contains(['"', '$', '{', '}'])).then(|| inner.to_string())
        }
        _ => None,
    }
}

/// Reads `variable` blocks' attributes into a [`VarDecl`].
pub fn declaration(name: &str, file: &Path, body: &hcl::Body) -> Result<VarDecl, PackerError> {
    let mut decl = VarDecl {
        name: name.to_string(),
        file: file.to_path_buf(),
        type_expr: None,
        default: None,
        sensitive: false,
        validations: Vec::new(),
    };
    for attr in body.attributes() {
        match attr.key.as_str() {
            "type" => decl.type_expr = Some(attr.expr.clone()),
            "default" => decl.default = Some(attr.expr.clone()),
            "sensitive" => decl.sensitive = matches!(attr.expr, Expression::Bool(true)),
            "description" => {}
            other => return Err(unknown_in(file, &format!("variable \"{name}\""), other)),
        }
    }
    for block in body.blocks() {
        if block.identifier() != "validation" {
            return Err(unknown_in(
                file,
                &format!("variable \"{name}\""),
                block.identifier(),
            ));
        }
        let get = |key: &str| {
            block
                .body()
                .attributes()
                .find(|a| a.key.as_str() == key)
                .map(|a| a.expr.clone())
                .ok_or_else(|| PackerError::HclStructure {
                    file: file.to_path_buf(),
                    detail: format!("`validation` of variable \"{name}\" needs `{key}`"),
                })
        };
        decl.validations
            .push((get("condition")?, get("error_message")?));
    }
    Ok(decl)
}

fn unknown_in(file: &Path, owner: &str, key: &str) -> PackerError {
    PackerError::HclStructure {
        file: file.to_path_buf(),
        detail: format!("`{key}` is not an argument of {owner}"),
    }
}
