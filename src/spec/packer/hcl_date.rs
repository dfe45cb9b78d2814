//! `formatdate`'s layout language (as in Packer and Terraform): `YYYY`, `MM`, `DD`, `hh`, `mm`,
//! `ss`, month and weekday names, zone forms, and `'quoted'` literal text.

use time::OffsetDateTime;

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];

/// Formats `when` by `layout`; an unknown letter sequence is an error naming it (as Packer's is).
pub fn format(layout: &str, when: OffsetDateTime) -> Result<String, String> {
    let chars: Vec<char> = layout.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '\'' {
            let (literal, next) = quoted(&chars, i)?;
            out.push_str(&literal);
            i = next;
            continue;
        }
        if !c.is_ascii_alphabetic() {
            out.push(c);
            i += 1;
            continue;
        }
        let run = chars[i..].iter().take_while(|&&d| d == c).count();
        let token: String = chars[i..i + run].iter().collect();
        out.push_str(&token_value(&token, when)?);
        i += run;
    }
    Ok(out)
}

/// A `'...'` literal starting at `start` (`''` is a literal quote); returns it and the next index.
fn quoted(chars: &[char], start: usize) -> Result<(String, usize), String> {
    if chars.get(start + 1) == Some(&'\'') {
        return Ok(("'".into(), start + 2));
    }
    let mut out = String::new();
    let mut i = start + 1;
    while i < chars.len() {
        if chars[i] == '\'' {
            if chars.get(i + 1) == Some(&'\'') {
                out.push('\'');
                i += 2;
                continue;
            }
            return Ok((out, i + 1));
        }
        out.push(chars[i]);
        i += 1;
    }
    Err("unterminated quoted literal in the formatdate layout".into())
}

fn token_value(token: &str, t: OffsetDateTime) -> Result<String, String> {
    let month = u8::from(t.month());
    let hour12 = match t.hour() % 12 {
        0 => 12,
        h => h,
    };
    let offset = t.offset();
    let (oh, om) = (offset.whole_hours(), offset.minutes_past_hour().abs());
    Ok(match token {
        "YYYY" => format!("{:04}", t.year()),
        "YY" => format!("{:02}", t.year() % 100),
        "MMMM" => MONTHS[usize::from(month) - 1].to_string(),
        "MMM" => MONTHS[usize::from(month) - 1][..3].to_string(),
        "MM" => format!("{month:02}"),
        "M" => month.to_string(),
        "DD" => format!("{:02}", t.day()),
        "D" => t.day().to_string(),
        "EEEE" => t.weekday().to_string(),
        "EEE" => t.weekday().to_string()[..3].to_string(),
        "hh" => format!("{:02}", t.hour()),
        "h" => t.hour().to_string(),
        "HH" => format!("{hour12:02}"),
        "H" => hour12.to_string(),
        "AA" => (if t.hour() < 12 { "AM" } else { "PM" }).to_string(),
        "aa" => (if t.hour() < 12 { "am" } else { "pm" }).to_string(),
        "mm" => format!("{:02}", t.minute()),
        "m" => t.minute().to_string(),
        "ss" => format!("{:02}", t.second()),
        "s" => t.second().to_string(),
        "ZZZZZ" => format!("{oh:+03}:{om:02}"),
        "ZZZZ" => format!("{oh:+03}{om:02}"),
        "ZZZ" if offset.is_utc() => "UTC".to_string(),
        "ZZZ" => format!("{oh:+03}{om:02}"),
        "Z" if offset.is_utc() => "Z".to_string(),
        "Z" => format!("{oh:+03}:{om:02}"),
        other => return Err(format!("invalid formatdate layout token `{other}`")),
    })
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    #[test]
    fn packer_layouts_format_as_documented() {
        let t = datetime!(2024-03-05 07:08:09 UTC);
        assert_eq!(
            super::format("YYYY.MMDD.hh:mm:ss", t).unwrap(),
            "2024.0305.07:08:09"
        );
        assert_eq!(
            super::format("DD MMM YYYY hh:mm ZZZ", t).unwrap(),
            "05 Mar 2024 07:08 UTC"
        );
        assert_eq!(super::format("EEEE, h'h'mm", t).unwrap(), "Tuesday, 7h08");
        assert!(super::format("YYYYY", t).is_err());
    }
}
