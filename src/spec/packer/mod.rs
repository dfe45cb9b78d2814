//! Packer JSON templates (the seed's `aliyun` builder and HashiCorp's `alicloud-ecs`) converted to a
//! bakerd spec, so users can bring the templates they have.
//!
//! Pipeline: [`template`] parses the JSON and resolves variables (with [`funcs`], the `{{ }}` engine),
//! [`seed`] or [`alicloud`] maps the builder's options, [`provisioners`] maps shell/file provisioners,
//! giving a [`draft::Draft`] that [`to_spec`] turns into a validated [`Spec`] (relative paths resolve
//! against the template's directory, see [`to_spec`]).
//!
//! Credentials: the spec names the environment variable the secret came from (`{{env `X`}}` in a
//! variable default used as `{{user `v`}}`, or the builder's fallback such as
//! `ALIYUN_ACCESS_KEY_SECRET`); a secret given literally or by `-var` is held in memory
//! (`SecretSource::Inline`) for `apply`. A written spec (`bakerd convert`, [`Converted::written`])
//! never contains it: it is replaced by a reference to `ALIBABA_CLOUD_ACCESS_KEY_SECRET` with a
//! warning. The AccessKey ID, not a secret, is written as its value.
//!
//! Nothing is silently ignored: each builder lists its mapped options and its warn-only options
//! (`alicloud::WARN_ONLY`: options that cannot change the image); any other option is an error.

pub mod alicloud;
pub mod convert;
pub mod draft;
pub mod error;
pub mod funcs;
pub mod hcl2;
pub mod hcl_date;
pub mod hcl_funcs;
pub mod hcl_vars;
pub mod manifest;
pub mod options;
pub mod provisioners;
pub mod seed;
pub mod template;
pub mod to_spec;

pub use convert::{parse_var_arg, to_draft, Options};
pub use error::PackerError;
pub use template::{is_packer_template, looks_like_json_template};

use crate::spec::Spec;

/// A converted template and what the user should know about it.
#[derive(Debug, Clone)]
pub struct Converted {
    /// The validated spec, credentials usable as they are (an inline secret only in memory).
    pub spec: Spec,
    /// Options or sections ignored on purpose because they cannot change the image, and skipped
    /// provisioners; print them so nothing is silently dropped.
    pub warnings: Vec<String>,
    /// The template's `post-processor "manifest"`, written by `apply` after the build.
    pub manifest: Option<manifest::ManifestRequest>,
    /// The HCL2 source it was built from (`alicloud-ecs.NAME`); `None` for a JSON template.
    pub source: Option<String>,
}

/// Converts a Packer JSON template (builder `aliyun` or `alicloud-ecs`).
///
/// Guarantees: every option is either mapped, warned about (see [`alicloud::WARN_ONLY`]), or an
/// error naming it; the spec passed [`Spec::from_yaml_str`] with `options.base_dir`.
/// Pure apart from reading the `-var-file`s and checking that scripts and uploads exist.
pub fn convert(text: &str, options: &Options) -> Result<Converted, PackerError> {
    let (draft, mut warnings) = to_draft(text, options)?;
    let spec = to_spec::to_spec(draft, &options.base_dir, &mut warnings)?;
    Ok(Converted {
        spec,
        warnings,
        manifest: None,
        source: None,
    })
}

/// Converts an HCL2 template that builds one `alicloud-ecs` source (after `--only`): its
/// `*.pkr.hcl` files and the `*.auto.pkrvars.hcl` files that go with them (a directory's; none for
/// a single file, as in Packer). Same core and guarantees as [`convert`]: equivalent JSON and HCL2
/// templates give the same spec. A template with several sources is an error naming them; see
/// [`convert_hcl_all`].
pub fn convert_hcl(
    files: &[hcl2::HclFile],
    auto_var_files: &[hcl_vars::VarFile],
    options: &Options,
) -> Result<Converted, PackerError> {
    let mut all = convert_hcl_all(files, auto_var_files, options)?;
    if all.len() > 1 {
        let names: Vec<String> = all.iter().filter_map(|c| c.source.clone()).collect();
        return Err(PackerError::SeveralSources {
            names: names.join(", "),
        });
    }
    Ok(all.remove(0))
}

/// Converts an HCL2 template into one spec per `alicloud-ecs` source its builds use (those
/// `--only` selects), in template order; each carries its source's name.
pub fn convert_hcl_all(
    files: &[hcl2::HclFile],
    auto_var_files: &[hcl_vars::VarFile],
    options: &Options,
) -> Result<Vec<Converted>, PackerError> {
    let mut all = Vec::new();
    for (template, variables) in hcl2::to_templates(files, auto_var_files, options)? {
        let manifest = template.manifest.clone();
        let source = template
            .builder
            .config
            .get("name")
            .and_then(serde_json::Value::as_str)
            .map(str::to_string);
        let (draft, mut warnings) = convert::draft_from(&template, variables, options)?;
        let spec = to_spec::to_spec(draft, &options.base_dir, &mut warnings)?;
        all.push(Converted {
            spec,
            warnings,
            manifest,
            source,
        });
    }
    Ok(all)
}

impl Converted {
    /// The spec to write out (`bakerd convert`): no secret in it; see [`to_spec::written_spec`].
    /// The returned warnings are [`Converted::warnings`] plus, if a secret was withheld, how to supply it.
    pub fn written(&self) -> (Spec, Vec<String>) {
        let (spec, warning) = to_spec::written_spec(&self.spec);
        let mut warnings = self.warnings.clone();
        warnings.extend(warning);
        (spec, warnings)
    }
}
