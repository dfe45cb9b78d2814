//! Errors of Packer template conversion. Each names what is wrong and where in the template.

use super::funcs::FuncError;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum PackerError {
    #[error("Packer template is not valid JSON at line {line}, column {column}: {source}")]
    Syntax {
        line: usize,
        column: usize,
        #[source]
        source: serde_json::Error,
    },
    #[error("Packer template must be a JSON object with a `builders` list")]
    NotATemplate,
    #[error("Packer template key `{key}` is not supported by bakerd (supported: variables, sensitive-variables, builders, provisioners, description, min_packer_version; keys starting with `_` are comments)")]
    UnknownTopLevelKey { key: String },
    #[error("Packer post-processors are not supported by bakerd: remove `post-processors` (bakerd's result is the image itself)")]
    PostProcessorsUnsupported,
    #[error("Packer template has {count} builders; bakerd converts templates with exactly one")]
    BuilderCount { count: usize },
    #[error("Packer builder type `{kind}` is not supported by bakerd (supported: `aliyun`, `alicloud-ecs`)")]
    UnknownBuilderType { kind: String },
    #[error("`{location}` in the Packer template must be {expected}")]
    WrongShape {
        location: String,
        expected: &'static str,
    },
    #[error("in `{location}` of the Packer template: {source}")]
    Function {
        location: String,
        #[source]
        source: FuncError,
    },
    #[error("Packer variables refer to each other in a cycle through `{name}`")]
    VariableCycle { name: String },
    #[error("Packer variable `{name}` is required (its default is null): set it with -var {name}=... or a -var-file")]
    RequiredVariableUnset { name: String },
    #[error("variable `{name}` set by {origin} is not declared in the template's `variables`")]
    UndeclaredVariable { name: String, origin: String },
    #[error("-var `{arg}` must have the form name=value")]
    BadVarArgument { arg: String },
    #[error("cannot read -var-file {}: {source}", path.display())]
    VarFileRead {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("-var-file {} must be a JSON object of strings: {detail}", path.display())]
    VarFileInvalid { path: PathBuf, detail: String },
    #[error("option `{option}` in {owner} is not supported by bakerd{hint}")]
    UnsupportedOption {
        option: String,
        owner: String,
        hint: String,
    },
    #[error("option `{option}` in {owner} is required{hint}")]
    MissingOption {
        option: String,
        owner: String,
        hint: String,
    },
    #[error("option `{option}` in {owner} is invalid: {detail}")]
    InvalidOption {
        option: String,
        owner: String,
        detail: String,
    },
    #[error("the template converts to a bakerd spec that does not validate: {}; field names are bakerd's (docs/spec.md maps them to Packer options), relative paths resolve against the template's directory", without_position(source))]
    InvalidSpec {
        #[source]
        source: crate::spec::SpecError,
    },
    #[error("provisioner #{index} has type `{kind}`, which bakerd does not support (supported: `shell`, `file`)")]
    UnsupportedProvisioner { index: usize, kind: String },
}

/// The spec error without its `<spec>:line:column: ` prefix: those point into YAML the user never saw.
fn without_position(error: &crate::spec::SpecError) -> String {
    let text = error.to_string();
    let prefix = match error.location() {
        Some(location) => format!("<spec>:{location}: "),
        None => "<spec>: ".to_string(),
    };
    match text.strip_prefix(&prefix) {
        Some(rest) => rest.to_string(),
        None => text,
    }
}
