//! Packer JSON templates (the seed's `aliyun` builder and HashiCorp's `alicloud-ecs`) converted to a
//! bakerd spec, so users can bring the templates they have.
//!
//! Pipeline: [`template`] parses the JSON and resolves variables (with [`funcs`], the `{{ }}` engine),
//! [`seed`] or [`alicloud`] maps the builder's options, [`provisioners`] maps shell/file provisioners,
//! giving a [`draft::Draft`] that becomes a spec.
//!
//! Credentials: `apply` uses the values in memory. A written spec (`bakerd convert`) never contains
//! the AccessKey secret: it names the environment variable the secret came from (`{{env `X`}}` in a
//! variable default used as `{{user `v`}}`, or the builder's fallback such as
//! `ALIYUN_ACCESS_KEY_SECRET`); a secret given literally or by `-var` is replaced by a reference to
//! `ALIBABA_CLOUD_ACCESS_KEY_SECRET` with a warning. See [`draft::Credentials::written_secret`].
//!
//! Nothing is silently ignored: each builder lists its mapped options and its warn-only options
//! (`alicloud::WARN_ONLY`: options that cannot change the image); any other option is an error.

pub mod alicloud;
pub mod convert;
pub mod draft;
pub mod error;
pub mod funcs;
pub mod options;
pub mod provisioners;
pub mod seed;
pub mod template;

pub use convert::{parse_var_arg, to_draft, Options};
pub use error::PackerError;
pub use template::is_packer_template;

/// A converted template and what the user should know about it.
#[derive(Debug, Clone)]
pub struct Converted {
    pub draft: draft::Draft,
    /// Options or sections ignored on purpose because they cannot change the image, and skipped
    /// provisioners; print them so nothing is silently dropped.
    pub warnings: Vec<String>,
}

/// Converts a Packer JSON template (builder `aliyun` or `alicloud-ecs`).
///
/// Guarantees: every option is either mapped, warned about (see [`alicloud::WARN_ONLY`]), or an
/// error naming it. Pure: reads only `text`, `options` and the `-var-file`s.
pub fn convert(text: &str, options: &Options) -> Result<Converted, PackerError> {
    let (draft, warnings) = to_draft(text, options)?;
    Ok(Converted { draft, warnings })
}
