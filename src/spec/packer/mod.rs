//! Packer JSON templates (the seed's `aliyun` builder and HashiCorp's `alicloud-ecs`) converted to a
//! bakerd spec, so users can bring the templates they have.

pub mod error;
pub mod funcs;
pub mod options;
pub mod template;

pub use error::PackerError;
pub use template::is_packer_template;
