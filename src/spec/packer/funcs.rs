//! The Packer template function engine: the `{{ ... }}` actions of Packer's JSON templates.
//!
//! Supported actions (a subset of Go `text/template` as Packer uses it):
//! - `{{env `X`}}`: environment variable `X` (empty if unset). Only inside `variables`, as in Packer.
//! - `{{user `x`}}`: the value of template variable `x` (after `-var`/`-var-file` overrides).
//! - `{{timestamp}}`: unix seconds of the run; one value for the whole run.
//! - `{{isotime}}` / `{{isotime `layout`}}`: the run's time in UTC, RFC 3339 or a Go layout.
//! - `{{uuid}}`: a fresh random UUID per call.
//! - `{{ "literal" }}`: a string literal (how Go templates escape `{{`).
//! - `{{ .Field }}`: only where the caller allows the field (e.g. `.Vars`/`.Path` in `execute_command`);
//!   such actions are kept verbatim for the later stage that fills them.
//!
//! Arguments may be raw strings (`` `x` ``) or double-quoted strings. Pipes, variables, `if`/`range`
//! and trim markers (`{{-`) are not supported and give [`FuncError::UnsupportedSyntax`].

use std::collections::BTreeMap;
use std::fmt::Write as _;
use time::OffsetDateTime;

/// What a template action failed on. The caller adds where in the template it happened.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FuncError {
    #[error("`{{{{` at byte {at} is never closed by `}}}}`")]
    Unclosed { at: usize },
    #[error("unsupported template syntax in `{{{{{action}}}}}`: {detail}")]
    UnsupportedSyntax { action: String, detail: String },
    #[error(
        "unknown template function `{name}` (bakerd supports env, user, timestamp, isotime, uuid)"
    )]
    UnknownFunction { name: String },
    #[error("`{{{{env `{name}`}}}}` is only allowed in `variables` (as in Packer): declare a variable whose default is the env call and use `{{{{user `...`}}}}` here")]
    EnvOutsideVariables { name: String },
    #[error("`{{{{user `{name}`}}}}` refers to a variable not declared in `variables`")]
    UndeclaredVariable { name: String },
    #[error("`{func}` takes {expected}, got {got} argument(s)")]
    WrongArgCount {
        func: &'static str,
        expected: &'static str,
        got: usize,
    },
    #[error("`{{{{ .{field} }}}}` is not available here{hint}")]
    FieldNotAllowed { field: String, hint: String },
    #[error("the rendered text would be more than {limit} bytes; bakerd refuses it before building it (variables that each repeat the previous one grow exponentially)")]
    TooLarge { limit: usize },
}

/// Largest text one `{{ }}` rendering may produce (the same bound as HCL2 values): checked before
/// each piece is appended, so a doubling chain of variables stops after a few MiB of work.
pub const MAX_RENDERED_BYTES: usize = super::hcl_funcs::MAX_VALUE_BYTES;

/// Everything a template action may read. Built by the caller per template section.
#[derive(Debug, Clone, Copy)]
pub struct FuncContext<'a> {
    /// The environment, but only while rendering `variables` (Packer forbids `env` elsewhere).
    pub env: Option<&'a BTreeMap<String, String>>,
    /// Resolved template variables, for `user`.
    pub user: &'a BTreeMap<String, String>,
    /// The run's time: `timestamp` and `isotime` must agree across the whole template.
    pub now: OffsetDateTime,
    /// `.Field` names this string may contain (kept verbatim); empty almost everywhere.
    pub allowed_fields: &'a [&'a str],
}

/// One piece of a template string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    Literal(String),
    Action(Action),
}

/// A parsed `{{ ... }}` action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Action {
    /// The text between the braces, for error messages and verbatim output.
    pub source: String,
    pub callee: Callee,
    pub args: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Callee {
    Function(String),
    Field(String),
    StringLiteral(String),
}

/// Splits a template string into literal text and actions.
pub fn parse(input: &str) -> Result<Vec<Segment>, FuncError> {
    let mut segments = Vec::new();
    let mut rest = input;
    let mut offset = 0;
    while let Some(open) = rest.find("{{") {
        if open > 0 {
            segments.push(Segment::Literal(rest[..open].to_string()));
        }
        let body_start = open + 2;
        let close =
            find_close(&rest[body_start..]).ok_or(FuncError::Unclosed { at: offset + open })?;
        let source = &rest[body_start..body_start + close];
        segments.push(Segment::Action(parse_action(source)?));
        let consumed = body_start + close + 2;
        offset += consumed;
        rest = &rest[consumed..];
    }
    if !rest.is_empty() {
        segments.push(Segment::Literal(rest.to_string()));
    }
    Ok(segments)
}

/// Finds the `}}` that closes an action, skipping `}}` inside string literals.
fn find_close(body: &str) -> Option<usize> {
    let bytes = body.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'`' => i += 1 + body[i + 1..].find('`')?,
            b'"' => i += 1 + quoted_len(&body[i + 1..])?,
            b'}' if bytes.get(i + 1) == Some(&b'}') => return Some(i),
            _ => {}
        }
        i += 1;
    }
    None
}

/// Length up to (not including) the closing quote of a double-quoted string body.
fn quoted_len(s: &str) -> Option<usize> {
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        match c {
            '\\' if !escaped => escaped = true,
            '"' if !escaped => return Some(i),
            _ => escaped = false,
        }
    }
    None
}

fn parse_action(source: &str) -> Result<Action, FuncError> {
    let unsupported = |detail: &str| FuncError::UnsupportedSyntax {
        action: source.to_string(),
        detail: detail.to_string(),
    };
    if source.starts_with('-') || source.ends_with('-') {
        return Err(unsupported("trim markers `{{-`/`-}}` are not supported"));
    }
    let tokens = tokenize(source).map_err(|detail| unsupported(&detail))?;
    let mut tokens = tokens.into_iter();
    let callee = match tokens.next() {
        None => return Err(unsupported("empty action")),
        Some(Token::Word(w)) => match w.strip_prefix('.') {
            Some(field) => Callee::Field(field.to_string()),
            None => Callee::Function(w),
        },
        Some(Token::Str(s)) => Callee::StringLiteral(s),
    };
    let mut args = Vec::new();
    for token in tokens {
        match token {
            Token::Str(s) => args.push(s),
            Token::Word(w) => {
                return Err(unsupported(&format!(
                    "argument `{w}` must be a string literal (`...` or \"...\")"
                )))
            }
        }
    }
    if !matches!(callee, Callee::Function(_)) && !args.is_empty() {
        return Err(unsupported("only functions take arguments"));
    }
    Ok(Action {
        source: source.to_string(),
        callee,
        args,
    })
}

enum Token {
    Word(String),
    Str(String),
}

fn tokenize(source: &str) -> Result<Vec<Token>, String> {
    let mut tokens = Vec::new();
    let mut chars = source.char_indices().peekable();
    while let Some(&(i, c)) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
        } else if c == '`' {
            let end = source[i + 1..].find('`').ok_or("unclosed raw string")?;
            tokens.push(Token::Str(source[i + 1..i + 1 + end].to_string()));
            while chars.peek().is_some_and(|&(j, _)| j <= i + 1 + end) {
                chars.next();
            }
        } else if c == '"' {
            let end = quoted_len(&source[i + 1..]).ok_or("unclosed string")?;
            tokens.push(Token::Str(unescape(&source[i + 1..i + 1 + end])?));
            while chars.peek().is_some_and(|&(j, _)| j <= i + 1 + end) {
                chars.next();
            }
        } else if c.is_alphanumeric() || c == '_' || c == '.' {
            let mut word = String::new();
            while let Some(&(_, c)) = chars.peek() {
                if !(c.is_alphanumeric() || c == '_' || c == '.') {
                    break;
                }
                word.push(c);
                chars.next();
            }
            tokens.push(Token::Word(word));
        } else {
            return Err(format!(
                "`{c}` is not supported (pipes, variables and control structures are not)"
            ));
        }
    }
    Ok(tokens)
}

fn unescape(s: &str) -> Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some('\\') => out.push('\\'),
            Some('"') => out.push('"'),
            other => return Err(format!("unsupported escape `\\{}`", other.unwrap_or(' '))),
        }
    }
    Ok(out)
}

/// Renders a template string.
pub fn render(input: &str, ctx: &FuncContext<'_>) -> Result<String, FuncError> {
    let mut out = String::with_capacity(input.len());
    for segment in parse(input)? {
        let piece = match segment {
            Segment::Literal(text) => text,
            Segment::Action(action) => eval(&action, ctx)?,
        };
        if out.len() + piece.len() > MAX_RENDERED_BYTES {
            return Err(FuncError::TooLarge {
                limit: MAX_RENDERED_BYTES,
            });
        }
        out.push_str(&piece);
    }
    Ok(out)
}

fn eval(action: &Action, ctx: &FuncContext<'_>) -> Result<String, FuncError> {
    let name = match &action.callee {
        Callee::StringLiteral(s) => return Ok(s.clone()),
        Callee::Field(field) if ctx.allowed_fields.contains(&field.as_str()) => {
            return Ok(format!("{{{{{}}}}}", action.source))
        }
        Callee::Field(field) => {
            return Err(FuncError::FieldNotAllowed {
                field: field.clone(),
                hint: field_hint(ctx.allowed_fields),
            })
        }
        Callee::Function(name) => name.as_str(),
    };
    let args = &action.args;
    match name {
        "env" => {
            let var = one_arg("env", args)?;
            let env = ctx
                .env
                .ok_or_else(|| FuncError::EnvOutsideVariables { name: var.clone() })?;
            Ok(env.get(var).cloned().unwrap_or_default())
        }
        "user" => {
            let var = one_arg("user", args)?;
            ctx.user
                .get(var)
                .cloned()
                .ok_or_else(|| FuncError::UndeclaredVariable { name: var.clone() })
        }
        "timestamp" => {
            no_args("timestamp", args)?;
            Ok(ctx.now.unix_timestamp().to_string())
        }
        "isotime" => isotime(args, ctx.now),
        "uuid" => {
            no_args("uuid", args)?;
            Ok(uuid::Uuid::new_v4().to_string())
        }
        other => Err(FuncError::UnknownFunction {
            name: other.to_string(),
        }),
    }
}

fn field_hint(allowed: &[&str]) -> String {
    if allowed.is_empty() {
        return String::new();
    }
    let names: Vec<String> = allowed.iter().map(|f| format!("`.{f}`")).collect();
    format!(" (only {} are)", names.join(", "))
}

fn one_arg<'a>(func: &'static str, args: &'a [String]) -> Result<&'a String, FuncError> {
    match args {
        [arg] => Ok(arg),
        _ => Err(FuncError::WrongArgCount {
            func,
            expected: "exactly one",
            got: args.len(),
        }),
    }
}

fn no_args(func: &'static str, args: &[String]) -> Result<(), FuncError> {
    if args.is_empty() {
        return Ok(());
    }
    Err(FuncError::WrongArgCount {
        func,
        expected: "no",
        got: args.len(),
    })
}

fn isotime(args: &[String], now: OffsetDateTime) -> Result<String, FuncError> {
    let now = now.to_offset(time::UtcOffset::UTC);
    match args {
        [] => Ok(format_go_layout("2006-01-02T15:04:05Z07:00", now)),
        [layout] => Ok(format_go_layout(layout, now)),
        _ => Err(FuncError::WrongArgCount {
            func: "isotime",
            expected: "zero or one",
            got: args.len(),
        }),
    }
}

/// If `input` is exactly one call `{{func `arg`}}` (whitespace allowed), returns `arg`.
/// Used to trace where a secret came from without evaluating it.
pub fn sole_call_arg(input: &str, func: &str) -> Option<String> {
    match parse(input).ok()?.as_slice() {
        [Segment::Action(Action {
            callee: Callee::Function(name),
            args,
            ..
        })] if name == func && args.len() == 1 => Some(args[0].clone()),
        _ => None,
    }
}

/// Names of the variables a template string reads with `user`, for resolving variables in order.
pub fn user_refs(input: &str) -> Vec<String> {
    let Ok(segments) = parse(input) else {
        return Vec::new();
    };
    segments
        .into_iter()
        .filter_map(|s| match s {
            Segment::Action(Action {
                callee: Callee::Function(name),
                mut args,
                ..
            }) if name == "user" && args.len() == 1 => args.pop(),
            _ => None,
        })
        .collect()
}

/// Formats a UTC time with a Go reference-time layout (`2006-01-02 15:04:05`), as `isotime` does.
/// Guarantees: every Go layout element is recognised the way Go's `nextStdChunk` does it; since the
/// time is UTC, zones print as `UTC`, `Z` or `+00:00`.
pub fn format_go_layout(layout: &str, t: OffsetDateTime) -> String {
    let mut out = String::new();
    let mut rest = layout;
    while !rest.is_empty() {
        let (len, text) = match go_element(rest, t) {
            Some(found) => found,
            None => {
                let c = rest.chars().next().unwrap_or_default();
                (c.len_utf8(), c.to_string())
            }
        };
        out.push_str(&text);
        rest = &rest[len..];
    }
    out
}

/// Recognises one layout element at the start of `s`: returns its length and formatted value.
fn go_element(s: &str, t: OffsetDateTime) -> Option<(usize, String)> {
    const ELEMENTS: &[&str] = &[
        "January",
        "Jan",
        "Monday",
        "Mon",
        "MST",
        "2006",
        "002",
        "01",
        "02",
        "03",
        "04",
        "05",
        "06",
        "15",
        "__2",
        "_2",
        "1",
        "2",
        "3",
        "4",
        "5",
        "PM",
        "pm",
        "-07:00:00",
        "-070000",
        "-07:00",
        "-0700",
        "-07",
        "Z07:00:00",
        "Z070000",
        "Z07:00",
        "Z0700",
        "Z07",
    ];
    if let Some(frac) = fraction_element(s, t) {
        return Some(frac);
    }
    if s.starts_with("_2006") {
        return None; // Go: a literal `_` followed by the year
    }
    let element = ELEMENTS.iter().find(|e| s.starts_with(**e))?;
    let short_name = *element == "Jan" || *element == "Mon";
    if short_name && s[3..].starts_with(|c: char| c.is_lowercase()) {
        return None; // Go: "Jan"/"Mon" followed by a lowercase letter is plain text ("Month")
    }
    Some((element.len(), element_value(element, t)))
}

fn element_value(element: &str, t: OffsetDateTime) -> String {
    let hour12 = match t.hour() % 12 {
        0 => 12,
        h => h,
    };
    let month = u8::from(t.month());
    match element {
        "January" => t.month().to_string(),
        "Jan" => t.month().to_string()[..3].to_string(),
        "Monday" => t.weekday().to_string(),
        "Mon" => t.weekday().to_string()[..3].to_string(),
        "MST" => "UTC".to_string(),
        "2006" => format!("{:04}", t.year()),
        "002" => format!("{:03}", t.ordinal()),
        "__2" => format!("{:>3}", t.ordinal()),
        "01" => format!("{month:02}"),
        "02" => format!("{:02}", t.day()),
        "03" => format!("{hour12:02}"),
        "04" => format!("{:02}", t.minute()),
        "05" => format!("{:02}", t.second()),
        "06" => format!("{:02}", t.year().rem_euclid(100)),
        "15" => format!("{:02}", t.hour()),
        "_2" => format!("{:>2}", t.day()),
        "1" => month.to_string(),
        "2" => t.day().to_string(),
        "3" => hour12.to_string(),
        "4" => t.minute().to_string(),
        "5" => t.second().to_string(),
        "PM" => if t.hour() >= 12 { "PM" } else { "AM" }.to_string(),
        "pm" => if t.hour() >= 12 { "pm" } else { "am" }.to_string(),
        z if z.starts_with('Z') => "Z".to_string(),
        "-07:00:00" => "+00:00:00".to_string(),
        "-070000" => "+000000".to_string(),
        "-07:00" => "+00:00".to_string(),
        "-0700" => "+0000".to_string(),
        _ => "+00".to_string(),
    }
}

/// `.000`/`,000` (fixed) or `.999` (trailing zeros trimmed) fractional seconds, as in Go.
fn fraction_element(s: &str, t: OffsetDateTime) -> Option<(usize, String)> {
    let mut chars = s.chars();
    let sep = chars.next().filter(|c| *c == '.' || *c == ',')?;
    let digit = chars.next().filter(|c| *c == '0' || *c == '9')?;
    let run = 1 + s[2..].chars().take_while(|c| *c == digit).count();
    if s[1 + run..].starts_with(|c: char| c.is_ascii_digit()) {
        return None;
    }
    let nanos = format!("{:09}", t.nanosecond());
    let digits = &nanos[..run.min(9)];
    let mut text = String::new();
    if digit == '0' {
        let _ = write!(text, "{sep}{digits}");
    } else {
        let trimmed = digits.trim_end_matches('0');
        if !trimmed.is_empty() {
            let _ = write!(text, "{sep}{trimmed}");
        }
    }
    Some((1 + run, text))
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn ctx<'a>(
        env: Option<&'a BTreeMap<String, String>>,
        user: &'a BTreeMap<String, String>,
    ) -> FuncContext<'a> {
        FuncContext {
            env,
            user,
            now: datetime!(2024-03-05 07:08:09.123 UTC),
            allowed_fields: &[],
        }
    }

    #[test]
    fn env_with_two_spaces_before_the_argument_reads_the_variable() {
        let env = BTreeMap::from([("ALIYUN_ACCESS_KEY_ID".to_string(), "id1".to_string())]);
        let user = BTreeMap::new();
        let out = render("{{env  `ALIYUN_ACCESS_KEY_ID`}}", &ctx(Some(&env), &user)).unwrap();
        assert_eq!(out, "id1");
    }

    #[test]
    fn env_outside_variables_is_refused() {
        let user = BTreeMap::new();
        let err = render("{{env `HOME`}}", &ctx(None, &user)).unwrap_err();
        assert_eq!(
            err,
            FuncError::EnvOutsideVariables {
                name: "HOME".into()
            }
        );
    }

    #[test]
    fn timestamp_isotime_and_literals_render() {
        let user = BTreeMap::from([("x".to_string(), "v".to_string())]);
        let c = ctx(None, &user);
        assert_eq!(render("a-{{timestamp}}", &c).unwrap(), "a-1709622489");
        assert_eq!(render("{{isotime}}", &c).unwrap(), "2024-03-05T07:08:09Z");
        assert_eq!(
            render(
                "{{isotime \"2006-01-02_15.04.05.000 Mon Jan _2 3PM MST\"}}",
                &c
            )
            .unwrap(),
            "2024-03-05_07.08.09.123 Tue Mar  5 7AM UTC"
        );
        assert_eq!(render("{{ user `x` }}{{\"{{\"}}", &c).unwrap(), "v{{");
    }

    #[test]
    fn uuid_is_fresh_per_call() {
        let user = BTreeMap::new();
        let out = render("{{uuid}} {{uuid}}", &ctx(None, &user)).unwrap();
        let (a, b) = out.split_once(' ').unwrap();
        assert_ne!(a, b);
        assert!(uuid::Uuid::parse_str(a).is_ok());
    }

    #[test]
    fn unknown_functions_fields_and_pipes_are_errors_naming_them() {
        let user = BTreeMap::new();
        let c = ctx(None, &user);
        assert_eq!(
            render("{{ build_name }}", &c).unwrap_err(),
            FuncError::UnknownFunction {
                name: "build_name".into()
            }
        );
        assert!(matches!(
            render("{{ .Path }}", &c),
            Err(FuncError::FieldNotAllowed { .. })
        ));
        assert!(matches!(
            render("{{ user `a` | lower }}", &c),
            Err(FuncError::UnsupportedSyntax { .. })
        ));
        assert_eq!(
            render("x {{ user `a`", &c).unwrap_err(),
            FuncError::Unclosed { at: 2 }
        );
    }

    #[test]
    fn allowed_fields_are_kept_verbatim() {
        let user = BTreeMap::new();
        let mut c = ctx(None, &user);
        c.allowed_fields = &["Vars", "Path"];
        assert_eq!(
            render("sudo {{ .Vars }} sh '{{.Path}}'", &c).unwrap(),
            "sudo {{ .Vars }} sh '{{.Path}}'"
        );
    }

    #[test]
    fn sole_call_arg_and_user_refs_trace_sources() {
        assert_eq!(sole_call_arg(" {{env `A`}}", "env"), None);
        assert_eq!(sole_call_arg("{{ env `A` }}", "env"), Some("A".into()));
        assert_eq!(user_refs("{{user `a`}}-{{user `b`}}"), vec!["a", "b"]);
    }
}
