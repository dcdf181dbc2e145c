//! CRM records: contacts, companies and deals, pushed by the CRM under its own ids (and
//! contacts Mailroom creates for unknown senders). Mail is filed under them by address.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordType {
    Contacts,
    Companies,
    Deals,
}

impl RecordType {
    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "contacts" => Some(Self::Contacts),
            "companies" => Some(Self::Companies),
            "deals" => Some(Self::Deals),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Contacts => "contacts",
            Self::Companies => "companies",
            Self::Deals => "deals",
        }
    }
}

/// A record by type and id.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct RecordRef {
    #[serde(rename = "type")]
    pub kind: RecordType,
    pub id: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CreatedBy {
    Crm,
    /// Created from an unknown sender; absorbed by a CRM contact with the same email.
    Mailroom,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Contact {
    pub id: String,
    pub name: String,
    /// Normalized (see [`normalize_email`]), without repeats.
    pub emails: Vec<String>,
    pub company_ids: Vec<String>,
    pub created_by: CreatedBy,
    /// Who may see the record: everyone when `None`, else only these users.
    #[serde(default)]
    pub visible_to: Option<Vec<String>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Company {
    pub id: String,
    pub name: String,
    /// Lower-case, without repeats.
    pub domains: Vec<String>,
    /// Who may see the record: everyone when `None`, else only these users.
    #[serde(default)]
    pub visible_to: Option<Vec<String>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deal {
    pub id: String,
    pub name: String,
    /// May name records not pushed yet; they count once they arrive.
    pub contact_ids: Vec<String>,
    pub company_ids: Vec<String>,
    /// Who may see the record: everyone when `None`, else only these users.
    #[serde(default)]
    pub visible_to: Option<Vec<String>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Record {
    #[serde(rename = "contacts")]
    Contact(Contact),
    #[serde(rename = "companies")]
    Company(Company),
    #[serde(rename = "deals")]
    Deal(Deal),
}

impl Record {
    /// The users the CRM restricted the record to, if it did.
    pub fn visible_to(&self) -> Option<&[String]> {
        match self {
            Record::Contact(c) => c.visible_to.as_deref(),
            Record::Company(c) => c.visible_to.as_deref(),
            Record::Deal(d) => d.visible_to.as_deref(),
        }
    }

    /// Whether Mailroom created the record (a contact for an unknown address).
    pub fn created_by_mailroom(&self) -> bool {
        matches!(self, Record::Contact(c) if c.created_by == CreatedBy::Mailroom)
    }

    pub fn reference(&self) -> RecordRef {
        let (kind, id) = match self {
            Record::Contact(c) => (RecordType::Contacts, &c.id),
            Record::Company(c) => (RecordType::Companies, &c.id),
            Record::Deal(d) => (RecordType::Deals, &d.id),
        };
        RecordRef {
            kind,
            id: id.clone(),
        }
    }
}

/// Whether `id` is a CRM id: 1-128 characters of `A-Za-z0-9._:-`.
pub fn valid_id(id: &str) -> bool {
    (1..=128).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
}

/// An address as Mailroom matches it: trimmed, without angle brackets, lower-case. `None`
/// when it is no address (no `@`, or an empty side).
pub fn normalize_email(address: &str) -> Option<String> {
    let address = address.trim().trim_start_matches('<').trim_end_matches('>');
    let (local, domain) = address.rsplit_once('@')?;
    if local.is_empty()
        || domain.is_empty()
        || address.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return None;
    }
    Some(format!(
        "{}@{}",
        local.to_lowercase(),
        normalize_domain(domain)?
    ))
}

/// A domain as Mailroom matches it: lower-case, without a trailing dot.
pub fn normalize_domain(domain: &str) -> Option<String> {
    let domain = domain.trim().trim_end_matches('.').to_lowercase();
    let valid = !domain.is_empty()
        && domain.len() <= 253
        && domain.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .chars()
                    .all(|c| c.is_alphanumeric() || c == '-' || c == '_')
        });
    valid.then_some(domain)
}

/// The domain of a normalized address.
pub fn domain_of(email: &str) -> &str {
    email.rsplit_once('@').map_or("", |(_, d)| d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_match_whatever_their_case() {
        assert_eq!(
            normalize_email(" <Ann.Smith@Example.COM.> ").as_deref(),
            Some("ann.smith@example.com")
        );
        assert_eq!(normalize_email("no-at-sign"), None);
        assert_eq!(normalize_email("@example.com"), None);
        assert_eq!(normalize_email("a b@example.com"), None);
        assert_eq!(
            normalize_domain("Example.com.").as_deref(),
            Some("example.com")
        );
        assert_eq!(normalize_domain("bad..com"), None);
        assert_eq!(domain_of("ann@example.com"), "example.com");
    }

    #[test]
    fn crm_ids_are_restricted() {
        assert!(valid_id("c-1:x_y.z"));
        assert!(!valid_id(""));
        assert!(!valid_id("a/b"));
        assert!(!valid_id(&"x".repeat(129)));
    }
}
