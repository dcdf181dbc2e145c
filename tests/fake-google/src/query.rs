//! The `q` parameter of `messages.list`: a subset of Gmail's search operators,
//! combined with spaces (AND), each optionally negated with `-`:
//!
//! * `after:` / `before:` — Unix seconds or a `YYYY/MM/DD` date (taken as
//!   midnight UTC); `after:` keeps messages at or after that instant,
//!   `before:` those strictly before it;
//! * `rfc822msgid:` — the `Message-ID` header, with or without angle brackets;
//! * `in:` / `label:` — a system label (`inbox`, `sent`, `trash`, ...) or a
//!   user label by name (lowercase, spaces and slashes as `-`) or id;
//!   `in:anywhere` includes spam and trash;
//! * `is:unread`, `is:read`, `is:starred`, `is:important`, and `category:`
//!   (`primary`, `social`, `promotions`, `updates`, `forums`).
//!
//! Anything else (free text, `from:`, `OR`, parentheses, ...) is refused so
//! that a client relying on it notices.

/// One search term.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Term {
    /// `internalDate` at or after this many milliseconds.
    After(i64),
    /// `internalDate` before this many milliseconds.
    Before(i64),
    /// The `Message-ID`, without angle brackets.
    Rfc822(String),
    /// Carries this label id; `None` for a label the mailbox does not have.
    Label(Option<String>),
    /// `in:anywhere`: matches everything, spam and trash included.
    Anywhere,
    Not(Box<Term>),
}

impl Term {
    pub(crate) fn matches(
        &self,
        labels: &[String],
        internal_date_ms: i64,
        message_id: Option<&str>,
    ) -> bool {
        match self {
            Term::After(ms) => internal_date_ms >= *ms,
            Term::Before(ms) => internal_date_ms < *ms,
            Term::Rfc822(id) => message_id == Some(id.as_str()),
            Term::Label(Some(label)) => labels.contains(label),
            Term::Label(None) => false,
            Term::Anywhere => true,
            Term::Not(term) => !term.matches(labels, internal_date_ms, message_id),
        }
    }

    /// Whether the term asks for spam or trash, which lifts their exclusion.
    pub(crate) fn reaches_spam_or_trash(&self) -> bool {
        match self {
            Term::Anywhere => true,
            Term::Label(Some(label)) => label == "SPAM" || label == "TRASH",
            _ => false,
        }
    }
}

/// The system label a search name stands for (`inbox` → `INBOX`).
pub(crate) fn system_label(name: &str) -> Option<&'static str> {
    Some(match name {
        "inbox" => "INBOX",
        "sent" => "SENT",
        "draft" | "drafts" => "DRAFT",
        "spam" => "SPAM",
        "trash" => "TRASH",
        "unread" => "UNREAD",
        "starred" => "STARRED",
        "important" => "IMPORTANT",
        "chat" | "chats" => "CHAT",
        "category_personal" => "CATEGORY_PERSONAL",
        "category_social" => "CATEGORY_SOCIAL",
        "category_promotions" => "CATEGORY_PROMOTIONS",
        "category_updates" => "CATEGORY_UPDATES",
        "category_forums" => "CATEGORY_FORUMS",
        _ => return None,
    })
}

/// How Gmail's search writes a label name: lowercase, with spaces and the
/// nesting slash as dashes.
pub(crate) fn search_name(name: &str) -> String {
    name.chars()
        .map(|c| match c {
            ' ' | '/' => '-',
            c => c.to_ascii_lowercase(),
        })
        .collect()
}

/// Parses `q`; `label` finds the id of a label by its search name (already
/// passed through [`search_name`]). The error is the message for a 400.
pub(crate) fn parse(q: &str, label: impl Fn(&str) -> Option<String>) -> Result<Vec<Term>, String> {
    tokens(q)?
        .iter()
        .map(|token| {
            let (negated, token) = match token.strip_prefix('-') {
                Some(rest) if !rest.is_empty() => (true, rest),
                _ => (false, token.as_str()),
            };
            let term = term(token, &label)?;
            Ok(if negated {
                Term::Not(Box::new(term))
            } else {
                term
            })
        })
        .collect()
}

fn term(token: &str, label: &impl Fn(&str) -> Option<String>) -> Result<Term, String> {
    let unsupported = || format!("Unsupported search term in q: {token}");
    let (operator, value) = token.split_once(':').ok_or_else(unsupported)?;
    if value.is_empty() {
        return Err(format!("Missing value in search term: {token}"));
    }
    let lowered = search_name(value);
    match operator.to_ascii_lowercase().as_str() {
        "after" => Ok(Term::After(instant_ms(value)?)),
        "before" => Ok(Term::Before(instant_ms(value)?)),
        "rfc822msgid" => Ok(Term::Rfc822(bare_message_id(value))),
        "in" if lowered == "anywhere" => Ok(Term::Anywhere),
        "in" | "label" => Ok(Term::Label(label(&lowered))),
        "is" => match lowered.as_str() {
            "unread" | "starred" | "important" => Ok(Term::Label(label(&lowered))),
            "read" => Ok(Term::Not(Box::new(Term::Label(label("unread"))))),
            _ => Err(unsupported()),
        },
        "category" => match lowered.as_str() {
            "primary" | "personal" => Ok(Term::Label(Some("CATEGORY_PERSONAL".to_owned()))),
            "social" | "promotions" | "updates" | "forums" => Ok(Term::Label(Some(format!(
                "CATEGORY_{}",
                lowered.to_ascii_uppercase()
            )))),
            _ => Err(unsupported()),
        },
        _ => Err(unsupported()),
    }
}

/// Splits on white space outside double quotes, dropping the quotes.
fn tokens(q: &str) -> Result<Vec<String>, String> {
    let mut tokens = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    for c in q.chars() {
        match c {
            '"' => quoted = !quoted,
            c if c.is_whitespace() && !quoted => {
                if !current.is_empty() {
                    tokens.push(std::mem::take(&mut current));
                }
            }
            c => current.push(c),
        }
    }
    if quoted {
        return Err("Unbalanced quotes in q".to_owned());
    }
    if !current.is_empty() {
        tokens.push(current);
    }
    Ok(tokens)
}

/// A `Message-ID` without white space or angle brackets.
pub(crate) fn bare_message_id(value: &str) -> String {
    let value = value.trim();
    let value = value.strip_prefix('<').unwrap_or(value);
    let value = value.strip_suffix('>').unwrap_or(value);
    value.trim().to_owned()
}

/// Unix seconds, or a `YYYY/MM/DD` (or `YYYY-MM-DD`) date at midnight UTC,
/// in milliseconds.
fn instant_ms(value: &str) -> Result<i64, String> {
    let invalid = || format!("Invalid date in search term: {value}");
    if value.bytes().all(|b| b.is_ascii_digit()) {
        let seconds: i64 = value.parse().map_err(|_| invalid())?;
        return seconds.checked_mul(1000).ok_or_else(invalid);
    }
    let mut fields = value.split(['/', '-']);
    let (Some(year), Some(month), Some(day), None) =
        (fields.next(), fields.next(), fields.next(), fields.next())
    else {
        return Err(invalid());
    };
    let year: i64 = year.parse().map_err(|_| invalid())?;
    let month: u32 = month.parse().map_err(|_| invalid())?;
    let day: u32 = day.parse().map_err(|_| invalid())?;
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return Err(invalid());
    }
    Ok(days_from_civil(year, month, day) * 86_400_000)
}

/// Days since 1970-01-01 of a proleptic Gregorian date.
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month_from_march = i64::from((month + 9) % 12);
    let day_of_year = (153 * month_from_march + 2) / 5 + i64::from(day) - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// The date of a day count since 1970-01-01.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let days = days + 719_468;
    let era = days.div_euclid(146_097);
    let day_of_era = days - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_from_march + 2) / 5 + 1;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month as u32, day as u32)
}

/// Milliseconds since the epoch as RFC 3339 in UTC, e.g.
/// `2024-05-01T12:00:00.250Z`.
pub(crate) fn rfc3339(ms: i64) -> String {
    let (days, ms_of_day) = (ms.div_euclid(86_400_000), ms.rem_euclid(86_400_000));
    let (year, month, day) = civil_from_days(days);
    let seconds = ms_of_day / 1000;
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        seconds / 3600,
        seconds / 60 % 60,
        seconds % 60,
        ms_of_day % 1000
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(name: &str) -> Option<String> {
        system_label(name)
            .map(str::to_owned)
            .or_else(|| (name == "work-projects").then(|| "Label_1".to_owned()))
    }

    #[test]
    fn dates_convert_both_ways() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        assert_eq!(days_from_civil(2024, 2, 29), 19_782);
        for days in [-1, 0, 59, 11_016, 11_017, 19_782, 2_932_896] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(1_709_164_800_250), "2024-02-29T00:00:00.250Z");
        assert_eq!(rfc3339(1_714_566_896_000), "2024-05-01T12:34:56.000Z");
    }

    #[test]
    fn terms_parse_and_match() {
        let terms = parse(
            "after:2024/02/29 before:1714566896 in:inbox -label:work-projects rfc822msgid:<a@b>",
            labels,
        )
        .unwrap();
        assert_eq!(
            terms,
            vec![
                Term::After(1_709_164_800_000),
                Term::Before(1_714_566_896_000),
                Term::Label(Some("INBOX".to_owned())),
                Term::Not(Box::new(Term::Label(Some("Label_1".to_owned())))),
                Term::Rfc822("a@b".to_owned()),
            ]
        );
        let inbox = vec!["INBOX".to_owned()];
        let all = |labels: &[String], at: i64, id: Option<&str>| {
            terms.iter().all(|t| t.matches(labels, at, id))
        };
        assert!(all(&inbox, 1_709_164_800_000, Some("a@b")));
        assert!(!all(&inbox, 1_709_164_799_999, Some("a@b")));
        assert!(!all(&inbox, 1_714_566_896_000, Some("a@b")));
        assert!(!all(&inbox, 1_709_164_800_000, Some("c@d")));
        let filed = vec!["INBOX".to_owned(), "Label_1".to_owned()];
        assert!(!all(&filed, 1_709_164_800_000, Some("a@b")));
    }

    #[test]
    fn label_names_are_searched_as_gmail_writes_them() {
        assert_eq!(search_name("Work/Projects"), "work-projects");
        let terms = parse("label:\"Work Projects\" is:read", labels).unwrap();
        assert_eq!(terms[0], Term::Label(Some("Label_1".to_owned())));
        assert_eq!(
            terms[1],
            Term::Not(Box::new(Term::Label(Some("UNREAD".to_owned()))))
        );
        assert_eq!(
            parse("label:nothing", labels).unwrap(),
            vec![Term::Label(None)]
        );
        assert!(parse("in:anywhere", labels).unwrap()[0].reaches_spam_or_trash());
        assert!(parse("in:trash", labels).unwrap()[0].reaches_spam_or_trash());
    }

    #[test]
    fn unsupported_terms_are_refused() {
        for q in [
            "hello",
            "from:a@b",
            "after:yesterday",
            "after:2024/13/01",
            "is:snoozed",
            "after:",
            "\"open",
        ] {
            assert!(parse(q, labels).is_err(), "{q}");
        }
        assert_eq!(parse("  ", labels).unwrap(), vec![]);
    }
}
