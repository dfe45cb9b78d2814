//! `SpecError`: every way a spec can be refused, each naming the file, line, column and field path.

use std::fmt;
use std::io;
use std::path::PathBuf;

/// A 1-based line and column in the spec's text.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Location {
    /// 1-based line number.
    pub line: usize,
    /// 1-based column number (in characters).
    pub column: usize,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

/// Where in which spec a problem is: `specs/demo.yaml:3:1`, or only the file when no line is known.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourcePos {
    /// The spec's file name as the user gave it, or `<spec>` for text not read from a file.
    pub file: String,
    /// The line and column, when known.
    pub location: Option<Location>,
}

impl fmt::Display for SourcePos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.location {
            Some(location) => write!(f, "{}:{}", self.file, location),
            None => f.write_str(&self.file),
        }
    }
}

/// Why a spec was refused. `Display` is the message for the user: `file:line:column: what, and what to do`.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    /// The spec file could not be read.
    #[error("cannot read spec file {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    /// The spec is larger than [`super::MAX_SPEC_BYTES`]; no real spec is, so it is refused unread.
    #[error("{file}: the spec is {size} bytes, more than the limit of {limit} bytes; a spec this large is not a spec")]
    TooLarge {
        file: String,
        size: usize,
        limit: usize,
    },

    /// Collections nested deeper than [`super::MAX_NESTING_DEPTH`].
    #[error("{at}: YAML nested more than {limit} levels deep; no bakerd field needs that, flatten the document")]
    TooDeep { at: SourcePos, limit: usize },

    /// Anchors and aliases expand to more nodes than [`super::MAX_EXPANDED_NODES`] (a "billion laughs").
    #[error("{at}: anchors and aliases expand the spec to more than {limit} YAML nodes; use fewer aliases")]
    TooManyNodes { at: SourcePos, limit: u64 },

    /// The text is not well-formed YAML, or is empty, or holds several documents.
    #[error("{at}: {message}")]
    Syntax { at: SourcePos, message: String },

    /// A key that no bakerd field has (often a typo).
    #[error("{at}: unknown field `{path}`{}", hint(suggestion.as_deref(), expected))]
    UnknownField {
        at: SourcePos,
        /// Full path of the unknown key, e.g. `instance.tyep` (its last segment is the key itself).
        path: String,
        /// The closest known key, when one is close enough to be a likely typo.
        suggestion: Option<String>,
        /// Every key allowed at that place.
        expected: Vec<String>,
    },

    /// A value of the wrong type, a missing required field, or a value that breaks a rule.
    #[error("{at}: `{path}`: {message}")]
    Invalid {
        at: SourcePos,
        /// Field path, e.g. `provisioners[1].shell.inline[0]`; `.` for the document itself.
        path: String,
        message: String,
    },

    /// A script or upload source named by the spec does not exist or cannot be read.
    #[error("{at}: `{path}`: local file {} cannot be used: {source}; paths are relative to the spec's directory", local.display())]
    MissingFile {
        at: SourcePos,
        path: String,
        /// The resolved local path that was tried.
        local: PathBuf,
        #[source]
        source: io::Error,
    },

    /// The frozen spec stored in a build's state cannot be read back (see `Spec::from_frozen`).
    #[error("the spec stored in the build state cannot be read: {detail}; the state was written by another bakerd version or is damaged, so start a new build with `bakerd apply`")]
    Frozen { detail: String },

    /// A referenced file could not be read while hashing (it changed or vanished after validation).
    #[error("cannot read {} (named by `{path}`) to hash the spec: {source}", local.display())]
    ReadReferenced {
        path: String,
        local: PathBuf,
        #[source]
        source: io::Error,
    },
}

impl SpecError {
    /// The field path the error is about, when it is about one field.
    pub fn field_path(&self) -> Option<&str> {
        match self {
            SpecError::UnknownField { path, .. }
            | SpecError::Invalid { path, .. }
            | SpecError::MissingFile { path, .. }
            | SpecError::ReadReferenced { path, .. } => Some(path),
            _ => None,
        }
    }

    /// The line and column the error points at, when known.
    pub fn location(&self) -> Option<Location> {
        match self {
            SpecError::TooDeep { at, .. }
            | SpecError::TooManyNodes { at, .. }
            | SpecError::Syntax { at, .. }
            | SpecError::UnknownField { at, .. }
            | SpecError::Invalid { at, .. }
            | SpecError::MissingFile { at, .. } => at.location,
            _ => None,
        }
    }
}

fn hint(suggestion: Option<&str>, expected: &[String]) -> String {
    match suggestion {
        Some(best) => format!(" — did you mean `{best}`?"),
        None if expected.is_empty() => String::new(),
        None => {
            let list: Vec<String> = expected.iter().map(|e| format!("`{e}`")).collect();
            format!("; expected one of {}", list.join(", "))
        }
    }
}

/// The known name closest to `unknown`, if it is close enough to be a typo of it.
pub(crate) fn suggest<'a>(
    unknown: &str,
    known: impl IntoIterator<Item = &'a str>,
) -> Option<String> {
    let limit = (unknown.chars().count() / 3).max(2);
    known
        .into_iter()
        .map(|candidate| (edit_distance(unknown, candidate), candidate))
        .filter(|(distance, _)| *distance <= limit)
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, candidate)| candidate.to_string())
}

/// Levenshtein distance over characters.
pub(crate) fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut current = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != *cb);
            current[j + 1] = substitution.min(previous[j + 1] + 1).min(current[j] + 1);
        }
        previous = current;
    }
    previous[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edit_distance_counts_single_edits() {
        assert_eq!(edit_distance("instnce", "instance"), 1);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }

    #[test]
    fn suggestion_picks_the_closest_and_ignores_far_names() {
        let known = ["region", "instance", "image"];
        assert_eq!(suggest("instnce", known).as_deref(), Some("instance"));
        assert_eq!(suggest("imgae", known).as_deref(), Some("image"));
        assert_eq!(suggest("zzzzzzzz", known), None);
    }
}
