//! The CLI's single entry point for "a spec file": a bakerd YAML spec or a Packer JSON template,
//! recognised by content, and the `bakerd convert` command.
//!
//! Detection: a file whose text is a JSON object with a `builders` key is a Packer template
//! ([`packer::is_packer_template`]); anything else is read as YAML, so a YAML spec gets YAML's located
//! errors. Both are refused unread above [`MAX_SPEC_BYTES`].

use super::packer::{self, PackerError};
use super::{Spec, SpecError, MAX_SPEC_BYTES};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// What kind of file a spec came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SourceKind {
    /// A bakerd YAML spec.
    Yaml,
    /// A Packer JSON template (builder `aliyun` or `alicloud-ecs`), converted.
    PackerTemplate,
}

/// A loaded, validated spec and what the user should be told before building.
#[derive(Clone, Debug)]
pub struct SpecSource {
    /// Credentials usable as they are: a Packer secret given literally or by `-var` is held in memory
    /// only ([`Spec::frozen`] removes it before anything is stored).
    pub spec: Spec,
    /// Conversion notes (Packer options ignored on purpose) and [`Spec::warnings`], ready to print.
    pub warnings: Vec<String>,
    pub kind: SourceKind,
    /// A Packer `post-processor "manifest"`: `apply` writes it after a successful build.
    pub manifest: Option<packer::manifest::ManifestRequest>,
    /// The HCL2 source (`alicloud-ecs.NAME`) this spec is, for a template that builds several.
    pub source: Option<String>,
}

/// Why a spec file could not be loaded. `Display` is the message for the user.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("cannot read spec file {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: the file is more than {limit} bytes; a spec or template this large is not one", path.display())]
    TooLarge { path: PathBuf, limit: usize },
    #[error("{}: the file is not UTF-8 text; specs are YAML and templates JSON", path.display())]
    NotText { path: PathBuf },
    #[error(transparent)]
    Spec(#[from] SpecError),
    #[error("{}: {source}", path.display())]
    Packer {
        path: PathBuf,
        /// Boxed: a conversion error can carry a whole `SpecError`.
        #[source]
        source: Box<PackerError>,
    },
    #[error("{}: {source}", path.display())]
    Vars {
        path: PathBuf,
        #[source]
        source: super::vars::VarsError,
    },
    #[error("{}: not a Packer template (a JSON object with a `builders` list); `bakerd convert` converts Packer templates, and a bakerd YAML spec needs no conversion", path.display())]
    NotATemplate { path: PathBuf },
}

impl SpecSource {
    /// Reads `path` (at most [`MAX_SPEC_BYTES`]), converts it if it is a Packer template (with `vars`
    /// as `-var name=value`, `var_files` as `-var-file`, the process environment and the current
    /// time), else loads it as a YAML spec. Relative paths in either resolve against the file's
    /// directory.
    ///
    /// For a YAML spec, `vars`/`var_files` (and `BAKERD_VAR_*`) set its `vars:` (see
    /// [`super::vars`]).
    ///
    /// Errors: variables that do not resolve; anything [`Spec::load`] or [`packer::convert`]
    /// refuses.
    pub fn load(
        path: &Path,
        vars: &[String],
        var_files: &[PathBuf],
        only: &[String],
    ) -> Result<SpecSource, SourceError> {
        let all = Self::load_all(path, vars, var_files, only)?;
        only_one(path, all, |s| s.source.clone())
    }

    /// Every spec `path` describes, with `--only` (which sources of an HCL2 template to build): one
    /// per `alicloud-ecs` source of an HCL2 template (a directory or a `*.pkr.hcl` file), in
    /// template order; else the one spec of the file.
    pub fn load_all(
        path: &Path,
        vars: &[String],
        var_files: &[PathBuf],
        only: &[String],
    ) -> Result<Vec<SpecSource>, SourceError> {
        if is_hcl_template_path(path) {
            let all = convert_hcl_template(path, vars, var_files, only)?;
            return Ok(all.into_iter().map(SpecSource::from_hcl).collect());
        }
        let text = read_limited(path)?;
        let (spec, mut warnings, kind) = if packer::looks_like_json_template(&text) {
            let converted = convert_template(path, &text, vars, var_files)?;
            (
                converted.spec,
                converted.warnings,
                SourceKind::PackerTemplate,
            )
        } else {
            let inputs = super::vars::VarInputs {
                args: vars,
                files: var_files,
                env: std::env::vars().collect(),
            };
            let text =
                super::vars::substitute(&text, &inputs).map_err(|source| SourceError::Vars {
                    path: path.to_path_buf(),
                    source,
                })?;
            let label = path.display().to_string();
            let spec = super::parse(&text, &base_dir_of(path), &label)?;
            (spec, Vec::new(), SourceKind::Yaml)
        };
        warnings.extend(spec.warnings().iter().map(ToString::to_string));
        Ok(vec![SpecSource {
            spec,
            warnings,
            kind,
            manifest: None,
            source: None,
        }])
    }

    fn from_hcl(converted: packer::Converted) -> SpecSource {
        let mut warnings = converted.warnings;
        warnings.extend(converted.spec.warnings().iter().map(ToString::to_string));
        SpecSource {
            spec: converted.spec,
            warnings,
            kind: SourceKind::PackerTemplate,
            manifest: converted.manifest,
            source: converted.source,
        }
    }

    /// The spec of `path` a build recorded with `hash` came from: for an HCL2 template with
    /// several sources, the one with that hash (when the template changed since, none matches and
    /// it is an error naming the sources); else the file's one spec, changed or not.
    pub fn load_matching(path: &Path, hash: &str) -> Result<SpecSource, SourceError> {
        let mut all = Self::load_all(path, &[], &[], &[])?;
        if let Some(i) = all
            .iter()
            .position(|s| s.spec.hash().is_ok_and(|h| h == hash))
        {
            return Ok(all.swap_remove(i));
        }
        only_one(path, all, |s| s.source.clone())
    }

    /// The file and, for one source of several, which: `tpl.pkr.hcl (alicloud-ecs.a)`.
    pub fn label(&self, path: &Path) -> String {
        match &self.source {
            Some(source) => format!("{} ({source})", path.display()),
            None => path.display().to_string(),
        }
    }
}

/// The one element of `all`, or an error naming the HCL2 sources when there are several.
fn only_one<T>(
    path: &Path,
    mut all: Vec<T>,
    name: impl Fn(&T) -> Option<String>,
) -> Result<T, SourceError> {
    if all.len() == 1 {
        return Ok(all.remove(0));
    }
    let names: Vec<String> = all.iter().filter_map(name).collect();
    Err(SourceError::Packer {
        path: path.to_path_buf(),
        source: Box::new(PackerError::SeveralSources {
            names: names.join(", "),
        }),
    })
}

fn convert_template(
    path: &Path,
    text: &str,
    vars: &[String],
    var_files: &[PathBuf],
) -> Result<packer::Converted, SourceError> {
    let packer_error = |source| SourceError::Packer {
        path: path.to_path_buf(),
        source: Box::new(source),
    };
    let vars = parse_vars(path, vars)?;
    let options = packer::Options::from_process(vars, var_files.to_vec(), base_dir_of(path));
    packer::convert(text, &options).map_err(packer_error)
}

/// `--var name=value` arguments, each checked for its form.
fn parse_vars(path: &Path, vars: &[String]) -> Result<Vec<(String, String)>, SourceError> {
    vars.iter()
        .map(|arg| packer::parse_var_arg(arg))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| SourceError::Packer {
            path: path.to_path_buf(),
            source: Box::new(source),
        })
}

/// A directory (of `*.pkr.hcl` files) or a file named `*.pkr.hcl` is an HCL2 Packer template.
pub fn is_hcl_template_path(path: &Path) -> bool {
    path.is_dir()
        || path
            .file_name()
            .is_some_and(|name| name.to_string_lossy().ends_with(".pkr.hcl"))
}

/// Reads an HCL2 template (a file, or a directory's `*.pkr.hcl` and `*.auto.pkrvars.hcl`, each at
/// most [`MAX_SPEC_BYTES`]) and converts each selected source. Relative paths resolve against the
/// directory.
fn convert_hcl_template(
    path: &Path,
    vars: &[String],
    var_files: &[PathBuf],
    only: &[String],
) -> Result<Vec<packer::Converted>, SourceError> {
    let packer_error = |source| SourceError::Packer {
        path: path.to_path_buf(),
        source: Box::new(source),
    };
    let (templates, auto_vars, base_dir) = if path.is_dir() {
        let (templates, auto_vars) = packer::hcl2::directory_files(path).map_err(|source| {
            packer_error(PackerError::DirectoryRead {
                path: path.to_path_buf(),
                source,
            })
        })?;
        if templates.is_empty() {
            return Err(packer_error(PackerError::EmptyDirectory {
                path: path.to_path_buf(),
            }));
        }
        (templates, auto_vars, path.to_path_buf())
    } else {
        (vec![path.to_path_buf()], Vec::new(), base_dir_of(path))
    };
    let read_all = |paths: Vec<PathBuf>| {
        paths
            .into_iter()
            .map(|path| {
                let text = read_limited(&path)?;
                Ok(packer::hcl2::HclFile { path, text })
            })
            .collect::<Result<Vec<_>, SourceError>>()
    };
    let (files, auto_vars) = (read_all(templates)?, read_all(auto_vars)?);
    let vars = parse_vars(path, vars)?;
    let mut options = packer::Options::from_process(vars, var_files.to_vec(), base_dir);
    options.only = only.to_vec();
    packer::convert_hcl_all(&files, &auto_vars, &options).map_err(packer_error)
}

/// The file's text, refusing more than [`MAX_SPEC_BYTES`] without reading further (also for files
/// that grow, or pipes whose size metadata does not tell).
fn read_limited(path: &Path) -> Result<String, SourceError> {
    let read_error = |source| SourceError::Read {
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::File::open(path).map_err(read_error)?;
    let mut bytes = Vec::new();
    file.take(MAX_SPEC_BYTES as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(read_error)?;
    if bytes.len() > MAX_SPEC_BYTES {
        return Err(SourceError::TooLarge {
            path: path.to_path_buf(),
            limit: MAX_SPEC_BYTES,
        });
    }
    String::from_utf8(bytes).map_err(|_| SourceError::NotText {
        path: path.to_path_buf(),
    })
}

/// The directory relative paths resolve against: the file's own (`.` for a bare file name).
fn base_dir_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// `bakerd convert`: print the bakerd YAML spec equivalent to a Packer template.
#[derive(Debug, Clone, clap::Args)]
pub struct ConvertArgs {
    /// The Packer template: JSON (builder `aliyun` or `alicloud-ecs`), a `*.pkr.hcl` file, or a
    /// directory of them (with its `*.auto.pkrvars.hcl`).
    pub template: PathBuf,
    /// HCL2: build only this source (`alicloud-ecs.NAME`), as Packer's `-only`.
    #[arg(long = "only", value_name = "TYPE.NAME")]
    pub only: Vec<String>,
    /// Set a template variable, as Packer's `-var` (repeatable; later wins).
    #[arg(long = "var", value_name = "NAME=VALUE")]
    pub vars: Vec<String>,
    /// Read template variables from a file (JSON, or HCL `*.pkrvars.hcl`), as Packer's `-var-file`
    /// (repeatable, in order).
    #[arg(long = "var-file", value_name = "FILE")]
    pub var_files: Vec<PathBuf>,
}

/// Runs `bakerd convert`: the spec on stdout, warnings on stderr. No secret is ever printed: a secret
/// given literally or by `--var` becomes a reference to `ALIBABA_CLOUD_ACCESS_KEY_SECRET`.
///
/// Exit codes: 0 converted; 2 bad input (unreadable, not a template, conversion refused), the
/// error on stderr; 1 stdout could not be written.
pub fn run_convert(args: ConvertArgs) -> ExitCode {
    let converted = if is_hcl_template_path(&args.template) {
        convert_hcl_template(&args.template, &args.vars, &args.var_files, &args.only)
            .and_then(|all| only_one(&args.template, all, |c| c.source.clone()))
    } else {
        read_limited(&args.template).and_then(|text| {
            if !packer::looks_like_json_template(&text) {
                return Err(SourceError::NotATemplate {
                    path: args.template.clone(),
                });
            }
            convert_template(&args.template, &text, &args.vars, &args.var_files)
        })
    }
    .map(|converted| converted.written());
    let (spec, warnings) = match converted {
        Ok(written) => written,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::from(2);
        }
    };
    for warning in &warnings {
        eprintln!("warning: {warning}");
    }
    let header = format!(
        "# bakerd spec converted from the Packer template {} by `bakerd convert`.\n\
         # Relative paths are relative to the template's directory: save this file next to it.\n",
        args.template.display()
    );
    let mut stdout = std::io::stdout().lock();
    match write!(stdout, "{header}{}", spec.to_yaml()).and_then(|()| stdout.flush()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: cannot write the spec to stdout: {error}");
            ExitCode::from(1)
        }
    }
}
