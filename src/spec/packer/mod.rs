//! Packer JSON templates (the seed's `aliyun` builder and HashiCorp's `alicloud-ecs`) converted to a
//! bakerd spec, so users can bring the templates they have.
//!
//! Pipeline: [`template`] parses the JSON and resolves variables (with [`funcs`], the `{{ }}` engine),
//! [`seed`] or [`alicloud`] maps the builder's options, [`provisioners`] maps shell/file provisioners,
//! giving a [`draft::Draft`] that becomes a spec.

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
