//! `{{timestamp}}` in image names and descriptions, rendered at build time from a time passed in
//! (pure: the reconciler renders once, stores the result, and a resumed build reuses it).

/// Placeholders the image name and description may use.
pub const PLACEHOLDERS: &[&str] = &["timestamp"];

/// Replaces `{{timestamp}}` (spaces inside the braces allowed) with `unix_seconds`.
pub fn render(template: &str, unix_seconds: u64) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        let Some(len) = rest[start..].find("}}") else {
            break;
        };
        let name = rest[start + 2..start + len].trim();
        out.push_str(&rest[..start]);
        if name == "timestamp" {
            out.push_str(&unix_seconds.to_string());
        } else {
            out.push_str(&rest[start..start + len + 2]);
        }
        rest = &rest[start + len + 2..];
    }
    out.push_str(rest);
    out
}

/// The placeholder names used in `template`, or an error for an unclosed `{{`.
pub fn placeholders(template: &str) -> Result<Vec<String>, String> {
    let mut names = Vec::new();
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        let Some(len) = rest[start..].find("}}") else {
            return Err("`{{` without a closing `}}`".into());
        };
        names.push(rest[start + 2..start + len].trim().to_string());
        rest = &rest[start + len + 2..];
    }
    Ok(names)
}

/// Checks that `template` uses only the placeholders in `allowed`.
pub fn check(template: &str, allowed: &[&str]) -> Result<(), String> {
    for name in placeholders(template)? {
        if !allowed.contains(&name.as_str()) {
            let list: Vec<String> = allowed.iter().map(|a| format!("{{{{{a}}}}}")).collect();
            return Err(format!(
                "unknown placeholder `{{{{{name}}}}}`; available: {}",
                list.join(", ")
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_every_timestamp_and_keeps_other_text() {
        assert_eq!(render("img-{{timestamp}}-{{ timestamp }}", 42), "img-42-42");
        assert_eq!(render("plain", 42), "plain");
        assert_eq!(render("a {{other}} b", 1), "a {{other}} b");
        assert_eq!(render("broken {{timestamp", 1), "broken {{timestamp");
    }

    #[test]
    fn check_refuses_unknown_and_unclosed_placeholders() {
        assert!(check("x-{{timestamp}}", PLACEHOLDERS).is_ok());
        assert!(check("x-{{isotime}}", PLACEHOLDERS)
            .unwrap_err()
            .contains("{{isotime}}"));
        assert!(check("x-{{timestamp", PLACEHOLDERS).is_err());
    }
}
