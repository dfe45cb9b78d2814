//! Errors of Packer template conversion. Each names what is wrong and where in the template.

use super::funcs::FuncError;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum PackerError {
    #[error(
        "invalid JSON at {line}:{column} (line:column) in the Packer template: {}",
        json_detail(source)
    )]
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
    #[error("Packer variable `{name}` is required (its default is null): set it with --var {name}=..., a --var-file, or (HCL2) PKR_VAR_{name}")]
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
    #[error("{}: HCL syntax error: {detail}", file_name(file))]
    HclSyntax { file: PathBuf, detail: String },
    #[error("{}: {detail}", file_name(file))]
    HclStructure { file: PathBuf, detail: String },
    #[error("in `{location}` of the Packer template: {detail}")]
    HclEval { location: String, detail: String },
    #[error("`{location}` of the Packer template expands to more than {limit} bytes; bakerd refuses it before building it (a chain of variables that each repeat the previous one grows exponentially)")]
    ValueTooLarge { location: String, limit: usize },
    #[error("variable `{name}` has the wrong type: {detail}")]
    VariableType { name: String, detail: String },
    #[error("variable `{name}` is invalid: {message}")]
    VariableValidation { name: String, message: String },
    #[error("the template has no `build` that uses an `alicloud-ecs` source (or --only selected none); bakerd builds alicloud-ecs sources")]
    NoAlicloudSource,
    #[error("the template builds several alicloud-ecs sources ({names}); this command takes one: choose it with --only TYPE.NAME (`bakerd apply` builds them all)")]
    SeveralSources { names: String },
    #[error("cannot read the template directory {}: {source}", path.display())]
    DirectoryRead {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: no *.pkr.hcl files in this directory", path.display())]
    EmptyDirectory { path: PathBuf },
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

/// serde_json's message without its own " at line L column C" suffix (the position is said once).
fn json_detail(error: &serde_json::Error) -> String {
    let text = error.to_string();
    match text.rfind(" at line ") {
        Some(at) => text[..at].to_string(),
        None => text,
    }
}

/// The file's name: the error already starts with the template's path (a file, or its directory).
fn file_name(path: &std::path::Path) -> String {
    path.file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string())
}
