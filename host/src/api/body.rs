//! Reading JSON request bodies field by field, so that every mistake names its field.

use super::error::ApiError;
use serde_json::{Map, Value};

pub struct Fields<'a>(&'a Map<String, Value>);

impl<'a> Fields<'a> {
    /// The body as an object whose keys are all among `allowed`.
    pub fn new(body: &'a Value, allowed: &[&str]) -> Result<Self, ApiError> {
        let object = body
            .as_object()
            .ok_or_else(|| ApiError::bad_request("the body must be a JSON object"))?;
        if let Some(unknown) = object.keys().find(|k| !allowed.contains(&k.as_str())) {
            return Err(ApiError::invalid(unknown.as_str(), "is not a known field"));
        }
        Ok(Self(object))
    }

    /// The body as an object, when its keys were checked elsewhere.
    pub fn lenient(body: &'a Value) -> Result<Self, ApiError> {
        body.as_object()
            .map(Self)
            .ok_or_else(|| ApiError::bad_request("the body must be a JSON object"))
    }

    pub fn has(&self, name: &str) -> bool {
        self.0.contains_key(name)
    }

    /// A string of 1 to `max` characters without control characters, when present and not null.
    pub fn text(&self, name: &str, max: usize) -> Result<Option<&'a str>, ApiError> {
        match self.0.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => {
                let s = s.trim();
                if s.is_empty() || s.chars().count() > max || s.chars().any(char::is_control) {
                    Err(ApiError::invalid(
                        name,
                        format!("must be 1-{max} characters without control characters"),
                    ))
                } else {
                    Ok(Some(s))
                }
            }
            Some(_) => Err(ApiError::invalid(name, "must be a string")),
        }
    }

    pub fn required_text(&self, name: &str, max: usize) -> Result<&'a str, ApiError> {
        self.text(name, max)?
            .ok_or_else(|| ApiError::invalid(name, "is required"))
    }

    /// Any string of at most `max` bytes (message bodies: line breaks allowed), when present
    /// and not null.
    pub fn string(&self, name: &str, max: usize) -> Result<Option<&'a str>, ApiError> {
        match self.0.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if s.len() <= max => Ok(Some(s)),
            Some(Value::String(_)) => Err(ApiError::invalid(
                name,
                format!("may be at most {max} bytes"),
            )),
            Some(_) => Err(ApiError::invalid(name, "must be a string")),
        }
    }

    /// A list of objects, when present and not null.
    pub fn objects(&self, name: &str, max_items: usize) -> Result<Vec<Fields<'a>>, ApiError> {
        match self.0.get(name) {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::Array(items)) if items.len() <= max_items => items
                .iter()
                .map(|item| {
                    item.as_object()
                        .map(Fields)
                        .ok_or_else(|| ApiError::invalid(name, "must be a list of objects"))
                })
                .collect(),
            Some(Value::Array(_)) => Err(ApiError::invalid(
                name,
                format!("may hold at most {max_items} items"),
            )),
            Some(_) => Err(ApiError::invalid(name, "must be a list of objects")),
        }
    }

    /// The keys of the object are all among `allowed`; `name` is the field it came from.
    pub fn only(&self, name: &str, allowed: &[&str]) -> Result<(), ApiError> {
        match self.0.keys().find(|k| !allowed.contains(&k.as_str())) {
            Some(unknown) => Err(ApiError::invalid(
                format!("{name}.{unknown}"),
                "is not a known field",
            )),
            None => Ok(()),
        }
    }

    pub fn bool(&self, name: &str) -> Result<Option<bool>, ApiError> {
        match self.0.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(_) => Err(ApiError::invalid(name, "must be true or false")),
        }
    }

    /// A list of strings, when present and not null.
    pub fn strings(&self, name: &str, max_items: usize) -> Result<Option<Vec<&'a str>>, ApiError> {
        match self.0.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Array(items)) if items.len() <= max_items => items
                .iter()
                .map(|item| {
                    item.as_str()
                        .ok_or_else(|| ApiError::invalid(name, "must be a list of strings"))
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Some),
            Some(Value::Array(_)) => Err(ApiError::invalid(
                name,
                format!("may hold at most {max_items} items"),
            )),
            Some(_) => Err(ApiError::invalid(name, "must be a list of strings")),
        }
    }
}
