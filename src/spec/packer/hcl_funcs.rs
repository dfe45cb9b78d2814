//! The HCL2 functions real Packer templates call, registered with `hcl-rs`'s evaluator.
//!
//! Why a thread-local: `hcl::eval` takes functions as plain `fn` pointers, so `env`, `timestamp` and
//! `file` cannot capture the conversion's environment, clock and directory. [`with_state`] installs
//! them for the duration of one evaluation on the calling thread; conversion stays pure (tests inject
//! both) and nothing reads the process environment behind the caller's back.
//!
//! Every function that builds a string checks the result's size against [`MAX_VALUE_BYTES`] before
//! allocating it, so a template cannot make bakerd build gigabytes out of a few doublings.

use hcl::eval::{Context, Func, FuncArgs, FuncDef, ParamType};
use hcl::Value;
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use time::OffsetDateTime;

/// Largest string or collection (in bytes of its JSON form) one expression may produce. 1 MiB is
/// far above anything a template needs (the whole template is at most that) and small enough that
/// a doubling chain is refused after a few MiB of work.
pub const MAX_VALUE_BYTES: usize = 1024 * 1024;

/// What the functions read besides their arguments.
pub struct State {
    pub env: BTreeMap<String, String>,
    pub now: OffsetDateTime,
    /// The template's directory: `path.root`, and what relative `file()`/`abspath()` paths mean.
    pub base_dir: PathBuf,
}

thread_local! {
    static STATE: RefCell<Option<State>> = const { RefCell::new(None) };
}

/// Runs `f` with `state` visible to the functions on this thread (and removed afterwards).
pub fn with_state<T>(state: State, f: impl FnOnce() -> T) -> T {
    STATE.with(|cell| *cell.borrow_mut() = Some(state));
    let out = f();
    STATE.with(|cell| *cell.borrow_mut() = None);
    out
}

fn read_state<T>(f: impl FnOnce(&State) -> T) -> Result<T, String> {
    STATE.with(|cell| {
        cell.borrow()
            .as_ref()
            .map(f)
            .ok_or_else(|| "called outside a template evaluation".to_string())
    })
}

/// The template's directory as an absolute path, for `path.root` and relative file paths.
pub fn absolute(base_dir: &Path, path: &str) -> PathBuf {
    let joined = base_dir.join(path);
    if joined.is_absolute() {
        joined
    } else {
        std::env::current_dir()
            .map(|cwd| cwd.join(&joined))
            .unwrap_or(joined)
    }
}

/// A context with every supported function and `path.root`/`path.cwd` declared.
pub fn context<'a>(base_dir: &Path) -> Context<'a> {
    use ParamType::{Any, String as Str};
    let mut ctx = Context::new();
    let mut declare = |name: &str, params: Vec<ParamType>, variadic: Option<ParamType>, f: Func| {
        let builder = FuncDef::builder().params(params);
        let builder = match variadic {
            Some(param) => builder.variadic_param(param),
            None => builder,
        };
        ctx.declare_func(name, builder.build(f));
    };
    let list = || ParamType::array_of(Any);
    let object = || ParamType::object_of(Any);
    declare("env", vec![Str], None, env);
    declare("timestamp", vec![], None, timestamp);
    declare("formatdate", vec![Str, Str], None, formatdate);
    declare("uuidv4", vec![], None, uuidv4);
    declare("lower", vec![Str], None, |a| {
        map_str(a, |s| s.to_lowercase())
    });
    declare("upper", vec![Str], None, |a| {
        map_str(a, |s| s.to_uppercase())
    });
    declare("trimspace", vec![Str], None, |a| {
        map_str(a, |s| s.trim().into())
    });
    declare("chomp", vec![Str], None, |a| {
        map_str(a, |s| s.trim_end_matches(['\r', '\n']).into())
    });
    declare("trimprefix", vec![Str, Str], None, trimprefix);
    declare("trimsuffix", vec![Str, Str], None, trimsuffix);
    declare("replace", vec![Str, Str, Str], None, replace);
    declare("format", vec![Str], Some(Any), format);
    declare("join", vec![Str], Some(list()), join);
    declare("split", vec![Str, Str], None, split);
    declare("lookup", vec![object(), Str], Some(Any), lookup);
    declare("concat", vec![], Some(list()), concat);
    declare("merge", vec![], Some(object()), merge);
    declare("length", vec![Any], None, length);
    declare("contains", vec![list(), Any], None, contains);
    declare("coalesce", vec![], Some(Any), coalesce);
    declare("keys", vec![object()], None, keys);
    declare("values", vec![object()], None, values);
    declare(
        "substr",
        vec![Str, ParamType::Number, ParamType::Number],
        None,
        substr,
    );
    declare("abspath", vec![Str], None, abspath);
    declare("basename", vec![Str], None, |a| {
        map_str(a, |s| {
            Path::new(s)
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
        })
    });
    declare("dirname", vec![Str], None, |a| {
        map_str(a, |s| {
            let parent = Path::new(s)
                .parent()
                .map(|p| p.to_string_lossy().into_owned());
            match parent {
                Some(p) if !p.is_empty() => p,
                _ => ".".into(),
            }
        })
    });
    declare("file", vec![Str], None, file);
    declare("tostring", vec![Any], None, tostring);
    let root = absolute(base_dir, ".");
    let cwd = std::env::current_dir().unwrap_or_default();
    let mut path = hcl::Map::new();
    path.insert("root".to_string(), Value::from(clean(&root)));
    path.insert("cwd".to_string(), Value::from(clean(&cwd)));
    ctx.declare_var("path", Value::Object(path));
    ctx
}

/// `/a/b/.` → `/a/b`: `path.root` is a directory name without a trailing `.`.
fn clean(path: &Path) -> String {
    let text = path.to_string_lossy();
    text.strip_suffix("/.").unwrap_or(&text).to_string()
}

fn text(args: &FuncArgs, index: usize) -> &str {
    args[index].as_str().unwrap_or_default()
}

/// Refuses a result of `len` bytes above [`MAX_VALUE_BYTES`], before it is built.
pub fn check_size(len: usize) -> Result<(), String> {
    if len > MAX_VALUE_BYTES {
        return Err(format!(
            "the result would be {len} bytes, more than the {MAX_VALUE_BYTES} bytes bakerd allows for one value"
        ));
    }
    Ok(())
}

fn map_str(args: FuncArgs, f: fn(&str) -> String) -> Result<Value, String> {
    Ok(Value::from(f(text(&args, 0))))
}

fn env(args: FuncArgs) -> Result<Value, String> {
    let name = text(&args, 0).to_string();
    read_state(|state| Value::from(state.env.get(&name).cloned().unwrap_or_default()))
}

fn timestamp(_: FuncArgs) -> Result<Value, String> {
    read_state(|state| Value::from(rfc3339(state.now)))
}

/// Packer's `timestamp()`: RFC 3339 in UTC, whole seconds.
pub fn rfc3339(now: OffsetDateTime) -> String {
    let now = now.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        now.year(),
        u8::from(now.month()),
        now.day(),
        now.hour(),
        now.minute(),
        now.second()
    )
}

fn formatdate(args: FuncArgs) -> Result<Value, String> {
    let when = OffsetDateTime::parse(
        text(&args, 1),
        &time::format_description::well_known::Rfc3339,
    )
    .map_err(|e| format!("`{}` is not an RFC 3339 timestamp: {e}", text(&args, 1)))?;
    super::hcl_date::format(text(&args, 0), when).map(Value::from)
}

fn uuidv4(_: FuncArgs) -> Result<Value, String> {
    Ok(Value::from(uuid::Uuid::new_v4().to_string()))
}

fn trimprefix(args: FuncArgs) -> Result<Value, String> {
    let (s, prefix) = (text(&args, 0), text(&args, 1));
    Ok(Value::from(s.strip_prefix(prefix).unwrap_or(s)))
}

fn trimsuffix(args: FuncArgs) -> Result<Value, String> {
    let (s, suffix) = (text(&args, 0), text(&args, 1));
    Ok(Value::from(s.strip_suffix(suffix).unwrap_or(s)))
}

fn replace(args: FuncArgs) -> Result<Value, String> {
    let (s, from, to) = (text(&args, 0), text(&args, 1), text(&args, 2));
    if from.len() > 1 && from.starts_with('/') && from.ends_with('/') {
        return Err("regular-expression replace (`/.../`) is not supported by bakerd".into());
    }
    if from.is_empty() {
        return Ok(Value::from(s));
    }
    check_size(s.len() + s.matches(from).count() * to.len())?;
    Ok(Value::from(s.replace(from, to)))
}

/// The plain-text form of a primitive, as HCL's string conversion gives it.
fn plain(value: &Value) -> Result<String, String> {
    match value {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        Value::Bool(b) => Ok(b.to_string()),
        Value::Null => Ok("null".into()),
        _ => Err(format!("`{value}` is not a string, number or bool")),
    }
}

fn format(args: FuncArgs) -> Result<Value, String> {
    let spec = text(&args, 0);
    let rest: Vec<&Value> = args.variadic_args().collect();
    let mut pieces = Vec::new();
    let mut next = rest.iter();
    let mut chars = spec.char_indices().peekable();
    let mut literal_start = 0;
    while let Some((i, c)) = chars.next() {
        if c != '%' {
            continue;
        }
        pieces.push(spec[literal_start..i].to_string());
        let verb = chars.next().map(|(_, v)| v);
        literal_start = chars.peek().map(|(j, _)| *j).unwrap_or(spec.len());
        let piece = match verb {
            Some('%') => "%".to_string(),
            Some('s' | 'd' | 'v') => plain(next.next().ok_or("too few arguments for format")?)?,
            Some('q') => format!("{:?}", plain(next.next().ok_or("too few arguments")?)?),
            other => {
                return Err(format!(
                    "format verb `%{}` is not supported",
                    other.unwrap_or(' ')
                ))
            }
        };
        pieces.push(piece);
    }
    pieces.push(spec[literal_start..].to_string());
    check_size(pieces.iter().map(String::len).sum())?;
    Ok(Value::from(pieces.concat()))
}

fn join(args: FuncArgs) -> Result<Value, String> {
    let separator = text(&args, 0);
    let mut items = Vec::new();
    for list in args.variadic_args() {
        for item in list.as_array().into_iter().flatten() {
            items.push(plain(item)?);
        }
    }
    check_size(items.iter().map(|s| s.len() + separator.len()).sum())?;
    Ok(Value::from(items.join(separator)))
}

fn split(args: FuncArgs) -> Result<Value, String> {
    let (separator, s) = (text(&args, 0), text(&args, 1));
    if separator.is_empty() {
        return Err("split needs a non-empty separator".into());
    }
    Ok(Value::Array(s.split(separator).map(Value::from).collect()))
}

fn lookup(args: FuncArgs) -> Result<Value, String> {
    let key = text(&args, 1);
    match args[0].as_object().and_then(|map| map.get(key)) {
        Some(value) => Ok(value.clone()),
        None => args
            .variadic_args()
            .next()
            .cloned()
            .ok_or_else(|| format!("the map has no key `{key}` and no default was given")),
    }
}

fn concat(args: FuncArgs) -> Result<Value, String> {
    let items: Vec<Value> = args
        .variadic_args()
        .flat_map(|list| list.as_array().cloned().unwrap_or_default())
        .collect();
    check_size(json_size(&Value::Array(items.clone())))?;
    Ok(Value::Array(items))
}

fn merge(args: FuncArgs) -> Result<Value, String> {
    let mut out = hcl::Map::new();
    for map in args.variadic_args() {
        for (key, value) in map.as_object().into_iter().flatten() {
            out.insert(key.clone(), value.clone());
        }
    }
    Ok(Value::Object(out))
}

fn length(args: FuncArgs) -> Result<Value, String> {
    let len = match &args[0] {
        Value::String(s) => s.chars().count(),
        Value::Array(items) => items.len(),
        Value::Object(map) => map.len(),
        other => return Err(format!("length of `{other}` is undefined")),
    };
    Ok(Value::from(len as u64))
}

fn contains(args: FuncArgs) -> Result<Value, String> {
    let found = args[0]
        .as_array()
        .is_some_and(|items| items.contains(&args[1]));
    Ok(Value::from(found))
}

fn coalesce(args: FuncArgs) -> Result<Value, String> {
    args.variadic_args()
        .find(|v| !v.is_null() && v.as_str() != Some(""))
        .cloned()
        .ok_or_else(|| "no non-empty argument".to_string())
}

fn keys(args: FuncArgs) -> Result<Value, String> {
    let map = args[0].as_object().cloned().unwrap_or_default();
    Ok(Value::Array(map.keys().cloned().map(Value::from).collect()))
}

fn values(args: FuncArgs) -> Result<Value, String> {
    let map = args[0].as_object().cloned().unwrap_or_default();
    Ok(Value::Array(map.values().cloned().collect()))
}

fn substr(args: FuncArgs) -> Result<Value, String> {
    let s: Vec<char> = text(&args, 0).chars().collect();
    let number = |i: usize| args[i].as_number().and_then(|n| n.as_i64()).unwrap_or(0);
    let (offset, length) = (number(1), number(2));
    let start = if offset < 0 {
        s.len().saturating_sub(offset.unsigned_abs() as usize)
    } else {
        (offset as usize).min(s.len())
    };
    let end = if length < 0 {
        s.len()
    } else {
        (start + length as usize).min(s.len())
    };
    Ok(Value::from(s[start..end].iter().collect::<String>()))
}

fn abspath(args: FuncArgs) -> Result<Value, String> {
    let path = text(&args, 0).to_string();
    read_state(|state| {
        Value::from(
            absolute(&state.base_dir, &path)
                .to_string_lossy()
                .into_owned(),
        )
    })
}

fn file(args: FuncArgs) -> Result<Value, String> {
    let path = text(&args, 0).to_string();
    let full = read_state(|state| absolute(&state.base_dir, &path))?;
    let size = std::fs::metadata(&full)
        .map_err(|e| format!("cannot read {}: {e}", full.display()))?
        .len();
    check_size(usize::try_from(size).unwrap_or(usize::MAX))?;
    std::fs::read_to_string(&full)
        .map(Value::from)
        .map_err(|e| format!("cannot read {}: {e}", full.display()))
}

fn tostring(args: FuncArgs) -> Result<Value, String> {
    plain(&args[0]).map(Value::from)
}

/// Size of a value's JSON form, to bound what an expression built.
pub fn json_size(value: &Value) -> usize {
    match value {
        Value::Null | Value::Bool(_) => 5,
        Value::Number(n) => n.to_string().len(),
        Value::String(s) => s.len() + 2,
        Value::Array(items) => items.iter().map(json_size).sum::<usize>() + items.len() + 2,
        Value::Object(map) => map
            .iter()
            .map(|(k, v)| k.len() + 3 + json_size(v))
            .sum::<usize>()
            .saturating_add(2),
    }
}
