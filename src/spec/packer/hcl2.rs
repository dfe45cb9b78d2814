//! Packer HCL2 templates (`*.pkr.hcl`, one file or a directory) turned into the same [`Template`]
//! the JSON format gives, so both formats share one conversion core and give the same spec.
//!
//! Parsing and expression evaluation are `hcl-rs`'s (`hcl::parse`, `hcl::eval`), with the functions
//! of [`super::hcl_funcs`]. This module knows Packer's block structure: `packer` (ignored),
//! `variable`, `locals`/`local`, `source`, `build` (with `sources`, `source` overrides,
//! `provisioner`, `post-processor`). Values are evaluated here; `{{ }}` Go-template actions inside
//! the resulting strings (`{{timestamp}}`, `{{ .Path }}`) are left for the common pipeline, as the
//! builder plugins interpolate them in HCL2 mode too.

use super::convert::Options;
use super::error::PackerError;
use super::hcl_funcs;
use super::hcl_vars::{self, evaluate, Resolved, VarDecl, VarFile};
use super::template::{RawSection, Template, Variables};
use hcl::eval::Context;
use hcl::{Block, Body, Expression, Value};
use serde_json::Map;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// One `.pkr.hcl` file's name and text.
pub struct HclFile {
    pub path: PathBuf,
    pub text: String,
}

/// The template's blocks, gathered from every file.
#[derive(Default)]
struct Parsed {
    variables: Vec<VarDecl>,
    locals: Vec<(String, Expression)>,
    sources: Vec<SourceBlock>,
    builds: Vec<(PathBuf, Body)>,
}

struct SourceBlock {
    kind: String,
    name: String,
    body: Body,
}

/// Parses and evaluates HCL2 files into one [`Template`] per `alicloud-ecs` source the builds use
/// (those `--only` selects), in template order, each with the resolved [`Variables`]: Packer
/// builds every source of a build, so `apply` builds each as its own build.
///
/// `auto_var_files` are the directory's `*.auto.pkrvars.hcl` (already read, in name order).
pub fn to_templates(
    files: &[HclFile],
    auto_var_files: &[VarFile],
    options: &Options,
) -> Result<Vec<(Template, Variables)>, PackerError> {
    let mut warnings = Vec::new();
    let mut parsed = Parsed::default();
    for file in files {
        collect(file, &mut parsed)?;
    }
    hcl_funcs::with_state(
        hcl_funcs::State {
            env: options.env.clone(),
            now: options.now,
            base_dir: options.base_dir.clone(),
        },
        || {
            let resolved =
                hcl_vars::resolve(&parsed.variables, auto_var_files, options, &mut warnings)?;
            let mut ctx = hcl_funcs::context(&options.base_dir);
            ctx.declare_var("var", Value::Object(resolved.values.clone()));
            let locals = evaluate_locals(&parsed.locals, &mut ctx)?;
            ctx.declare_var("local", Value::Object(locals));
            select(&parsed, options, &mut warnings)?
                .into_iter()
                .map(|selected| {
                    build_template(&parsed, selected, &resolved, &ctx, options, &warnings)
                })
                .collect()
        },
    )
}

fn syntax_error(file: &Path, error: hcl::Error) -> PackerError {
    PackerError::HclSyntax {
        file: file.to_path_buf(),
        detail: error.to_string(),
    }
}

fn structure(file: &Path, detail: String) -> PackerError {
    PackerError::HclStructure {
        file: file.to_path_buf(),
        detail,
    }
}

fn labels(block: &Block) -> Vec<String> {
    block
        .labels()
        .iter()
        .map(|l| l.as_str().to_string())
        .collect()
}

/// Sorts one file's top-level blocks into `parsed`.
fn collect(file: &HclFile, parsed: &mut Parsed) -> Result<(), PackerError> {
    let body = hcl::parse(&file.text).map_err(|e| syntax_error(&file.path, e))?;
    if let Some(attr) = body.attributes().next() {
        return Err(structure(
            &file.path,
            format!("`{}` is an argument at the top level; templates hold only blocks (variable, locals, source, build, packer)", attr.key),
        ));
    }
    for block in body.blocks() {
        let labels = labels(block);
        let expect = |n: usize| -> Result<(), PackerError> {
            if labels.len() == n {
                return Ok(());
            }
            Err(structure(
                &file.path,
                format!(
                    "a `{}` block takes {n} label(s), got {}",
                    block.identifier(),
                    labels.len()
                ),
            ))
        };
        match block.identifier() {
            "packer" => {}
            "variable" => {
                expect(1)?;
                let decl = hcl_vars::declaration(&labels[0], &file.path, block.body())?;
                parsed.variables.push(decl);
            }
            "locals" => parsed.locals.extend(
                block
                    .body()
                    .attributes()
                    .map(|a| (a.key.to_string(), a.expr.clone())),
            ),
            "local" => {
                expect(1)?;
                let expr = block
                    .body()
                    .attributes()
                    .find(|a| a.key.as_str() == "expression")
                    .ok_or_else(|| structure(&file.path, format!("local \"{}\" needs `expression`", labels[0])))?;
                parsed.locals.push((labels[0].clone(), expr.expr.clone()));
            }
            "source" => {
                expect(2)?;
                parsed.sources.push(SourceBlock {
                    kind: labels[0].clone(),
                    name: labels[1].clone(),
                    body: block.body().clone(),
                });
            }
            "build" => parsed.builds.push((file.path.clone(), block.body().clone())),
            "data" => {
                return Err(structure(
                    &file.path,
                    format!("data sources (`data \"{}\"`) are not supported by bakerd; put the value in a variable", labels.join("\" \"")),
                ))
            }
            other => {
                return Err(structure(
                    &file.path,
                    format!("`{other}` is not a Packer block (expected variable, locals, local, source, build, packer)"),
                ))
            }
        }
    }
    Ok(())
}

/// Locals may refer to each other in any order: evaluate in passes until all are done; a pass
/// without progress means a cycle or an error, reported for the first local left.
fn evaluate_locals(
    locals: &[(String, Expression)],
    ctx: &mut Context,
) -> Result<hcl::Map<String, Value>, PackerError> {
    let mut done = hcl::Map::new();
    let mut pending: Vec<&(String, Expression)> = locals.iter().collect();
    while !pending.is_empty() {
        ctx.declare_var("local", Value::Object(done.clone()));
        let mut left = Vec::new();
        let mut first_error = None;
        for local in pending.iter().copied() {
            match evaluate(&local.1, ctx, &format!("local.{}", local.0)) {
                Ok(value) => {
                    done.insert(local.0.clone(), value);
                }
                Err(e @ PackerError::ValueTooLarge { .. }) => return Err(e),
                Err(e) => {
                    first_error.get_or_insert(e);
                    left.push(local);
                }
            }
        }
        if left.len() == pending.len() {
            return Err(first_error.expect("a pass without progress had an error"));
        }
        pending = left;
    }
    Ok(done)
}

/// `source.alicloud-ecs.x` / `sources.alicloud-ecs.x` → (`alicloud-ecs`, `x`).
fn source_ref(reference: &str) -> Option<(String, String)> {
    let rest = reference
        .strip_prefix("sources.")
        .or_else(|| reference.strip_prefix("source."))?;
    let (kind, name) = rest.split_once('.')?;
    Some((kind.to_string(), name.to_string()))
}

/// A source a build uses, with the build's `source "x.y" { ... }` block if it has one.
struct Selected<'a> {
    build: &'a Body,
    source: &'a SourceBlock,
    overrides: Option<&'a Body>,
}

/// The `alicloud-ecs` sources to build: sources of other builders are skipped with a warning;
/// `--only` (`options.only`) picks among several.
fn select<'a>(
    parsed: &'a Parsed,
    options: &Options,
    warnings: &mut Vec<String>,
) -> Result<Vec<Selected<'a>>, PackerError> {
    let mut candidates = Vec::new();
    for (file, build) in &parsed.builds {
        for (kind, name, overrides) in build_sources(file, build)? {
            let source = parsed
                .sources
                .iter()
                .find(|s| s.kind == kind && s.name == name)
                .ok_or_else(|| {
                    structure(
                        file,
                        format!(
                            "the build uses source.{kind}.{name}, which no `source` block defines"
                        ),
                    )
                })?;
            let full = format!("{kind}.{name}");
            let picked =
                options.only.is_empty() || options.only.iter().any(|o| o == &full || o == &name);
            if kind != "alicloud-ecs" {
                warnings.push(format!(
                    "source.{full} skipped: bakerd builds `alicloud-ecs` sources only"
                ));
            } else if !picked {
                warnings.push(format!("source.{full} skipped: not selected by --only"));
            } else {
                candidates.push(Selected {
                    build,
                    source,
                    overrides,
                });
            }
        }
    }
    if candidates.is_empty() {
        return Err(PackerError::NoAlicloudSource);
    }
    Ok(candidates)
}

/// A source a build names: type, name, and the build's own `source "..." {}` block, if any.
type SourceUse<'a> = (String, String, Option<&'a Body>);

/// The build's `sources = [...]` list and `source "..." {}` blocks.
fn build_sources<'a>(file: &Path, build: &'a Body) -> Result<Vec<SourceUse<'a>>, PackerError> {
    let mut out = Vec::new();
    for attr in build.attributes() {
        match attr.key.as_str() {
            "sources" => {
                let Expression::Array(items) = &attr.expr else {
                    return Err(structure(
                        file,
                        "`sources` of a build must be a list of \"source.TYPE.NAME\" strings"
                            .into(),
                    ));
                };
                for item in items {
                    let text = match item {
                        Expression::String(s) => s.clone(),
                        other => other.to_string().trim_matches('"').to_string(),
                    };
                    let (kind, name) = source_ref(&text).ok_or_else(|| {
                        structure(
                            file,
                            format!("`{text}` in `sources` is not \"source.TYPE.NAME\""),
                        )
                    })?;
                    out.push((kind, name, None));
                }
            }
            "name" | "description" => {}
            other => {
                return Err(structure(
                    file,
                    format!("`{other}` is not an argument of `build`"),
                ))
            }
        }
    }
    for block in build.blocks().filter(|b| b.identifier() == "source") {
        let label = labels(block).concat();
        let (kind, name) = source_ref(&label)
            .or_else(|| source_ref(&format!("source.{label}")))
            .ok_or_else(|| {
                structure(
                    file,
                    format!("`source \"{label}\"` in a build must name TYPE.NAME"),
                )
            })?;
        out.push((kind, name, Some(block.body())));
    }
    Ok(out)
}

/// One selected source's template; `warnings` are the template's own, each template gets a copy.
fn build_template(
    parsed: &Parsed,
    selected: Selected<'_>,
    resolved: &Resolved,
    ctx: &Context,
    options: &Options,
    warnings: &[String],
) -> Result<(Template, Variables), PackerError> {
    let mut warnings = warnings.to_vec();
    let source = selected.source;
    let mut builder_name = format!("alicloud-ecs.{}", source.name);
    let location = format!("source.{builder_name}");
    let mut config = body_json(&source.body, ctx, &location, resolved)?;
    if let Some(overrides) = selected.overrides {
        for (key, value) in body_json(overrides, ctx, &location, resolved)? {
            if key == "name" {
                builder_name = format!("alicloud-ecs.{}", value.as_str().unwrap_or_default());
            } else {
                config.insert(key, value);
            }
        }
    }
    config.insert("name".into(), builder_name.clone().into());
    let mut source_ctx = ctx.clone();
    let mut source_var = hcl::Map::new();
    source_var.insert("name".to_string(), Value::from(source.name.clone()));
    source_var.insert("type".to_string(), Value::from("alicloud-ecs"));
    source_ctx.declare_var("source", Value::Object(source_var));
    let (provisioners, post) = build_blocks(selected.build, &source_ctx, resolved, &mut warnings)?;
    let manifest = post.map(|config| {
        super::manifest::ManifestRequest::from_config(&config, &source.name, &options.base_dir)
    });
    let template = Template {
        variables: parsed
            .variables
            .iter()
            .map(|d| (d.name.clone(), None))
            .collect(),
        sensitive_variables: resolved.sensitive.clone(),
        description: None,
        builder: RawSection {
            kind: "alicloud-ecs".into(),
            config,
        },
        provisioners,
        warnings,
        manifest,
    };
    Ok((template, variables(resolved)))
}

/// The variables as the `{{user}}` engine sees them (primitives as text).
fn variables(resolved: &Resolved) -> Variables {
    let values = resolved
        .values
        .iter()
        .filter_map(|(name, value)| {
            let text = match value {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                Value::Bool(b) => b.to_string(),
                _ => return None,
            };
            Some((name.clone(), text))
        })
        .collect();
    Variables {
        values,
        env_sources: resolved.env_sources.clone(),
    }
}

/// A block evaluated to the JSON object the mapping reads.
type JsonObject = Map<String, serde_json::Value>;

/// Provisioners in order (with `only`/`except` in Packer's `TYPE.NAME` form) and the options of
/// a `post-processor "manifest"`; other post-processors only warn: bakerd's result is the image.
fn build_blocks(
    build: &Body,
    ctx: &Context,
    resolved: &Resolved,
    warnings: &mut Vec<String>,
) -> Result<(Vec<RawSection>, Option<JsonObject>), PackerError> {
    let mut out = Vec::new();
    let mut manifest = None;
    for block in build.blocks() {
        let kind = labels(block).concat();
        match block.identifier() {
            "source" => {}
            "provisioner" => {
                let location = format!("provisioner \"{kind}\" #{}", out.len());
                let mut config = body_json(block.body(), ctx, &location, resolved)?;
                for key in ["only", "except"] {
                    if let Some(serde_json::Value::Array(items)) = config.get_mut(key) {
                        for item in items.iter_mut() {
                            if let Some(text) =
                                item.as_str().and_then(|t| t.strip_prefix("source."))
                            {
                                *item = text.into();
                            }
                        }
                    }
                }
                out.push(RawSection { kind, config });
            }
            "post-processor" if kind == "manifest" => {
                let location = "post-processor \"manifest\"";
                manifest = Some(body_json(block.body(), ctx, location, resolved)?);
            }
            "post-processor" | "post-processors" => warnings.push(post_processor_warning(block)),
            other => warnings.push(format!(
                "build block `{other}` ignored: bakerd does not run it"
            )),
        }
    }
    Ok((out, manifest))
}

fn post_processor_warning(block: &Block) -> String {
    let kinds: BTreeSet<String> = if block.identifier() == "post-processors" {
        block.body().blocks().map(|b| labels(b).concat()).collect()
    } else {
        [labels(block).concat()].into()
    };
    let kinds = kinds.into_iter().collect::<Vec<_>>().join(", ");
    format!("post-processor {kinds} not run: bakerd's result is the image itself (`bakerd show --json` gives its id)")
}

/// A block body as the JSON object the builder/provisioner mapping reads. Nested blocks become
/// objects; repeated `image_disk_mapping` blocks become the `image_disk_mappings` list (the JSON
/// spelling). An argument that is exactly `var.X` of a string variable is written as
/// `{{user `X`}}`, so credentials keep their environment-variable origin as in JSON templates.
fn body_json(
    body: &Body,
    ctx: &Context,
    location: &str,
    resolved: &Resolved,
) -> Result<Map<String, serde_json::Value>, PackerError> {
    let mut out = Map::new();
    for attr in body.attributes() {
        let key = attr.key.to_string();
        let here = format!("{location}.{key}");
        let value = match var_reference(&attr.expr) {
            Some(name) if resolved.values.get(&name).is_some_and(Value::is_string) => {
                serde_json::Value::String(format!("{{{{user `{name}`}}}}"))
            }
            _ => to_json(evaluate(&attr.expr, ctx, &here)?),
        };
        out.insert(key, value);
    }
    let mut disks = Vec::new();
    for block in body.blocks() {
        let key = block.identifier().to_string();
        let here = format!("{location}.{key}");
        let value = serde_json::Value::Object(body_json(block.body(), ctx, &here, resolved)?);
        if key == "image_disk_mapping" {
            disks.push(value);
        } else if out.insert(key.clone(), value).is_some() {
            return Err(PackerError::HclEval {
                location: here,
                detail: format!("`{key}` is given more than once"),
            });
        }
    }
    if !disks.is_empty() {
        out.insert(
            "image_disk_mappings".into(),
            serde_json::Value::Array(disks),
        );
    }
    Ok(out)
}

/// `var.X` → `X`.
fn var_reference(expr: &Expression) -> Option<String> {
    let Expression::Traversal(traversal) = expr else {
        return None;
    };
    match (&traversal.expr, traversal.operators.as_slice()) {
        (Expression::Variable(v), [hcl::expr::TraversalOperator::GetAttr(name)])
            if v.as_str() == "var" =>
        {
            Some(name.to_string())
        }
        _ => None,
    }
}

fn to_json(value: Value) -> serde_json::Value {
    serde_json::to_value(value).unwrap_or(serde_json::Value::Null)
}

/// Finds a directory's template files (`*.pkr.hcl`) and auto variable files
/// (`*.auto.pkrvars.hcl`), each sorted by name, as Packer loads them.
pub fn directory_files(dir: &Path) -> std::io::Result<(Vec<PathBuf>, Vec<PathBuf>)> {
    let mut templates = Vec::new();
    let mut auto_vars = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if name.ends_with(".auto.pkrvars.hcl") {
            auto_vars.push(path);
        } else if name.ends_with(".pkr.hcl") {
            templates.push(path);
        }
    }
    templates.sort();
    auto_vars.sort();
    Ok((templates, auto_vars))
}
