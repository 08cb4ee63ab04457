//! Low-level lexical rules of `.inp` files, as EPANET applies them: tokens, comments, keyword
//! matching, numbers and time values.

/// One line split into tokens, with the text after `;` (if any).
#[derive(Debug, Clone, Default)]
pub(crate) struct Tokens<'a> {
    pub tokens: Vec<&'a str>,
    /// Text after the first `;`, without the line end; `None` when there is no `;`.
    pub comment: Option<&'a str>,
}

/// Splits a line as EPANET does: everything from the first `;` is a comment; tokens are
/// separated by spaces, tabs and line ends; a token that starts with `"` runs to the next `"`.
pub(crate) fn tokenize(line: &str) -> Tokens<'_> {
    let line = line.trim_end_matches(['\n', '\r']);
    let (data, comment) = match line.find(';') {
        Some(at) => (&line[..at], Some(&line[at + 1..])),
        None => (line, None),
    };
    let mut tokens = Vec::new();
    let is_separator = |c: char| c == ' ' || c == '\t' || c == '\n' || c == '\r';
    let mut rest = data;
    loop {
        rest = rest.trim_start_matches(is_separator);
        if rest.is_empty() {
            break;
        }
        if let Some(quoted) = rest.strip_prefix('"') {
            let end = quoted.find('"').unwrap_or(quoted.len());
            tokens.push(&quoted[..end]);
            rest = quoted.get(end + 1..).unwrap_or("");
        } else {
            let end = rest.find(is_separator).unwrap_or(rest.len());
            tokens.push(&rest[..end]);
            rest = &rest[end..];
        }
    }
    Tokens { tokens, comment }
}

/// EPANET's keyword test: `token` begins with `keyword`, ignoring ASCII case.
pub(crate) fn matches(token: &str, keyword: &str) -> bool {
    let token = token.trim_start_matches(' ').as_bytes();
    let keyword = keyword.as_bytes();
    !keyword.is_empty()
        && token.len() >= keyword.len()
        && token[..keyword.len()].eq_ignore_ascii_case(keyword)
}

/// Index of the first keyword of `keywords` that `token` begins with.
pub(crate) fn find_keyword(token: &str, keywords: &[&str]) -> Option<usize> {
    keywords.iter().position(|k| matches(token, k))
}

/// A finite number written in full (EPANET's `getfloat`; non-finite values are refused).
pub(crate) fn number(token: &str) -> Option<f64> {
    token.parse::<f64>().ok().filter(|x| x.is_finite())
}

/// C's `atol`: the integer at the start of `token` (0 when there is none).
pub(crate) fn leading_integer(token: &str) -> i64 {
    let trimmed = token.trim_start();
    let (sign, digits) = match trimmed.as_bytes().first() {
        Some(b'-') => (-1, &trimmed[1..]),
        Some(b'+') => (1, &trimmed[1..]),
        _ => (1, trimmed),
    };
    let end = digits
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(digits.len());
    digits[..end].parse::<i64>().map(|v| sign * v).unwrap_or(0)
}

/// A time value in hours, from decimal hours or `h:mm[:ss]` with optional units
/// (`SEC`, `MIN`, `HOURS`, `DAYS`, or `AM`/`PM` for clock times), as EPANET's `hour()`.
/// `None` when the text is not a time. `extra_fields` is set when the value had more than
/// three `:` fields (EPANET reads and ignores the fourth and does not look further).
pub(crate) fn hours(time: &str, units: &str, extra_fields: &mut bool) -> Option<f64> {
    let mut fields = [0.0_f64; 3];
    let mut count = 0;
    for part in time.split(':').filter(|p| !p.is_empty()) {
        if count > 3 {
            break;
        }
        let value = number(part)?;
        if count < 3 {
            fields[count] = value;
        } else {
            *extra_fields = true;
        }
        count += 1;
    }
    if count == 0 {
        return None;
    }
    if count == 1 {
        if units.is_empty() {
            return Some(fields[0]);
        }
        for (unit, per_hour) in [
            ("SEC", 1.0 / 3600.0),
            ("MIN", 1.0 / 60.0),
            ("HOU", 1.0),
            ("DAY", 24.0),
        ] {
            if matches(units, unit) {
                return Some(fields[0] * per_hour);
            }
        }
    }
    let mut value = fields[0];
    if count > 1 {
        value += fields[1] / 60.0 + fields[2] / 3600.0;
    }
    if units.is_empty() {
        return Some(value);
    }
    if matches(units, "AM") {
        return match value {
            v if v >= 13.0 => None,
            v if v >= 12.0 => Some(v - 12.0),
            v => Some(v),
        };
    }
    if matches(units, "PM") {
        return match value {
            v if v >= 13.0 => None,
            v if v >= 12.0 => Some(v),
            v => Some(v + 12.0),
        };
    }
    None
}

/// Formats seconds as `h:mm:ss`, which [`hours`] reads back to the same number of seconds.
pub(crate) fn clock(seconds: u64) -> String {
    format!(
        "{}:{:02}:{:02}",
        seconds / 3600,
        (seconds / 60) % 60,
        seconds % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_comments_and_quotes() {
        let t = tokenize(" a\tb  \"c d\" e ;note here\r\n");
        assert_eq!(t.tokens, vec!["a", "b", "c d", "e"]);
        assert_eq!(t.comment, Some("note here"));
        assert!(tokenize("   ").tokens.is_empty());
        assert!(tokenize(";only").tokens.is_empty());
    }

    #[test]
    fn keywords_are_prefixes_ignoring_case() {
        assert!(matches("Duration", "DURA"));
        assert!(matches("cv", "CV"));
        assert!(!matches("CL", "CLOSED"));
        assert_eq!(
            find_keyword(">=", &["=", "<>", "<=", ">=", "<", ">"]),
            Some(3)
        );
    }

    #[test]
    fn time_formats() {
        let mut extra = false;
        assert_eq!(hours("27:05", "", &mut extra), Some(27.0 + 5.0 / 60.0));
        assert_eq!(hours("90", "MIN", &mut extra), Some(1.5));
        assert_eq!(hours("2", "days", &mut extra), Some(48.0));
        assert_eq!(hours("12", "AM", &mut extra), Some(0.0));
        assert_eq!(hours("1:30", "PM", &mut extra), Some(13.5));
        assert_eq!(hours("13", "PM", &mut extra), None);
        assert_eq!(hours("x", "", &mut extra), None);
        assert!(!extra);
        assert_eq!(hours("0:00:00:00", "", &mut extra), Some(0.0));
        assert!(extra);
        assert_eq!(clock(97_205), "27:00:05");
    }

    #[test]
    fn leading_integers() {
        assert_eq!(leading_integer("12abc"), 12);
        assert_eq!(leading_integer("abc"), 0);
        assert_eq!(leading_integer("-3"), -3);
    }
}
