//! Request bodies as typed structs.
//!
//! Each route reads its JSON body into a struct that refuses unknown fields; the field types
//! below carry the value rules (lengths, control characters, list sizes), so a struct says
//! what each field may hold. A wrong type, an unknown field or a bad value is a 422 naming
//! the field's path (`imap.port`, `to[1].email`); a body that is not a JSON object is a 400
//! (docs/api.md, "Conventions"). An optional field given as `null` is taken as absent.

use super::error::ApiError;
use crate::account::validate_email;
use serde::de::{Deserialize, Deserializer, Error as _};
use serde_json::Value;

/// Reads `body`, which must be a JSON object, into `T`.
pub fn parse<'a, T: Deserialize<'a>>(body: &'a Value) -> Result<T, ApiError> {
    if !body.is_object() {
        return Err(ApiError::bad_request("the body must be a JSON object"));
    }
    parse_at("", body)
}

/// Reads `value`, found at the path `at` of a body, into `T`; errors name the whole path.
pub fn parse_at<'a, T: Deserialize<'a>>(at: &str, value: &'a Value) -> Result<T, ApiError> {
    serde_path_to_error::deserialize(value).map_err(|error| {
        let inner = error.path().to_string();
        let field = match (at, inner.as_str()) {
            (at, ".") => at.to_owned(),
            ("", inner) => inner.to_owned(),
            (at, inner) if inner.starts_with('[') => format!("{at}{inner}"),
            (at, inner) => format!("{at}.{inner}"),
        };
        let message = error.into_inner().to_string();
        if message.starts_with("unknown field") {
            ApiError::invalid(field, "is not a known field")
        } else if OUR_RULES.iter().any(|rule| message.starts_with(rule)) {
            ApiError::invalid(field, message)
        } else {
            // serde's own words ("invalid type: integer `5`, expected a string").
            let message = format!("{field}: {message}");
            ApiError {
                message,
                ..ApiError::invalid(field, "")
            }
        }
    })
}

/// How the rules of this module's field types begin, read as "`field` must be ...".
const OUR_RULES: &[&str] = &["must ", "may ", "is ", "has "];

/// An optional field that must be there: `is required` when absent or null.
pub trait Required<T> {
    fn required(self, field: &str) -> Result<T, ApiError>;
}

impl<T> Required<T> for Option<T> {
    fn required(self, field: &str) -> Result<T, ApiError> {
        self.ok_or_else(|| ApiError::invalid(field, "is required"))
    }
}

/// For `PATCH` fields where `null` means "clear": absent is `None`, `null` is `Some(None)`.
/// Use with `#[serde(default, deserialize_with = "body::nullable")]`.
pub fn nullable<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

/// Text of 1 to `MAX` characters without control characters, surrounding spaces removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Text<const MAX: usize>(pub String);

impl<const MAX: usize> Text<MAX> {
    /// `text` without surrounding spaces, when that keeps the rule.
    pub fn check(text: &str) -> Option<&str> {
        let trimmed = text.trim();
        let fits = !trimmed.is_empty()
            && trimmed.chars().count() <= MAX
            && !trimmed.chars().any(char::is_control);
        fits.then_some(trimmed)
    }

    pub fn into_inner(self) -> String {
        self.0
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<'de, const MAX: usize> Deserialize<'de> for Text<MAX> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        let trimmed = Self::check(&text).ok_or_else(|| {
            D::Error::custom(format!(
                "must be 1-{MAX} characters without control characters"
            ))
        })?;
        Ok(Self(if trimmed.len() == text.len() {
            text
        } else {
            trimmed.to_owned()
        }))
    }
}

/// An email address (see [`validate_email`]), surrounding spaces removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email(pub String);

impl<'de> Deserialize<'de> for Email {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let Text(email) = Text::<254>::deserialize(deserializer)?;
        validate_email(&email).map_err(D::Error::custom)?;
        Ok(Self(email))
    }
}

/// Any string of at most `MAX` bytes, line breaks included (message bodies).
#[derive(Debug, Clone)]
pub struct Long<const MAX: usize>(pub String);

impl<'de, const MAX: usize> Deserialize<'de> for Long<MAX> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        if text.len() > MAX {
            return Err(D::Error::custom(format!("may be at most {MAX} bytes")));
        }
        Ok(Self(text))
    }
}

/// A list of at most `MAX` items.
#[derive(Debug, Clone)]
pub struct List<T, const MAX: usize>(pub Vec<T>);

impl<'de, T: Deserialize<'de>, const MAX: usize> Deserialize<'de> for List<T, MAX> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let items = Vec::<T>::deserialize(deserializer)?;
        if items.len() > MAX {
            return Err(D::Error::custom(format!("may hold at most {MAX} items")));
        }
        Ok(Self(items))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;
    use serde_json::json;

    #[derive(Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    struct Sample {
        name: Option<Text<5>>,
        #[allow(dead_code)]
        items: Option<List<Item, 2>>,
        #[serde(default, deserialize_with = "nullable")]
        note: Option<Option<Text<5>>>,
    }

    #[derive(Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    struct Item {
        #[allow(dead_code)]
        size: u8,
    }

    fn field(body: Value) -> String {
        let error = parse::<Sample>(&body).unwrap_err();
        assert_eq!(error.status, warp::http::StatusCode::UNPROCESSABLE_ENTITY);
        error.field.expect("a field")
    }

    #[test]
    fn every_mistake_names_its_path() {
        assert_eq!(field(json!({"name": 5})), "name");
        assert_eq!(field(json!({"name": "toolong"})), "name");
        assert_eq!(field(json!({"name": "a\u{7}b"})), "name");
        assert_eq!(field(json!({"colour": "red"})), "colour");
        assert_eq!(
            field(json!({"items": [{"size": 1}, {"size": 300}]})),
            "items[1].size"
        );
        assert_eq!(field(json!({"items": [{"size": 1, "x": 1}]})), "items[0].x");
        assert_eq!(
            field(json!({"items": [{"size": 1}, {"size": 2}, {"size": 3}]})),
            "items"
        );
        let error = parse_at::<Item>("imap", &json!({"size": "big"})).unwrap_err();
        assert_eq!(error.field.as_deref(), Some("imap.size"));
        let error = parse_at::<Item>("imap", &json!(7)).unwrap_err();
        assert_eq!(error.field.as_deref(), Some("imap"));
    }

    #[test]
    fn text_is_trimmed_null_is_absent_and_nullable_tells_null_from_absent() {
        let sample: Sample = parse(&json!({"name": "  ab ", "note": null})).unwrap();
        assert_eq!(sample.name, Some(Text("ab".into())));
        assert_eq!(sample.note, Some(None));
        let sample: Sample = parse(&json!({"name": null})).unwrap();
        assert_eq!(sample.name, None);
        assert_eq!(sample.note, None);
        assert_eq!(
            sample.name.required("name").unwrap_err().field.as_deref(),
            Some("name")
        );
    }

    #[test]
    fn a_body_that_is_not_an_object_is_a_bad_request() {
        let error = parse::<Sample>(&json!([1])).unwrap_err();
        assert_eq!(error.status, warp::http::StatusCode::BAD_REQUEST);
    }
}
