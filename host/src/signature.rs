//! Users' signatures: stored as sanitized HTML, with a plain-text form derived for text mail.

/// The largest signature accepted, in bytes of HTML.
pub const MAX_SIGNATURE_BYTES: usize = 16 * 1024;

/// Sanitizes a signature: no scripts, event handlers, forms, frames or styles that load
/// anything. An empty result is no signature.
pub fn sanitize(html: &str) -> Result<Option<String>, String> {
    if html.len() > MAX_SIGNATURE_BYTES {
        return Err(format!("must be at most {MAX_SIGNATURE_BYTES} bytes"));
    }
    let clean = ammonia::Builder::default()
        .link_rel(Some("noopener noreferrer"))
        .clean(html)
        .to_string();
    let clean = clean.trim();
    Ok((!clean.is_empty()).then(|| clean.to_owned()))
}

/// The text form of sanitized HTML: blocks and `<br>` as line breaks, entities decoded,
/// no decoration and no wrapping.
pub fn to_text(html: &str) -> String {
    const UNWRAPPED: usize = 100_000;
    let text = html2text::config::plain_no_decorate()
        .string_from_read(html.as_bytes(), UNWRAPPED)
        .unwrap_or_default();
    let lines: Vec<&str> = text.lines().map(str::trim_end).collect();
    lines.join("\n").trim().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scripts_and_handlers_are_removed() {
        let clean = sanitize(
            r#"<p onclick="x()">Jane <b>Doe</b></p><script>alert(1)</script><form><input></form>"#,
        )
        .unwrap()
        .unwrap();
        assert!(
            !clean.contains("script") && !clean.contains("onclick") && !clean.contains("form"),
            "{clean}"
        );
        assert!(clean.contains("<b>Doe</b>"));
        assert_eq!(sanitize("<script>x</script>").unwrap(), None);
        assert!(sanitize(&"a".repeat(MAX_SIGNATURE_BYTES + 1)).is_err());
    }

    #[test]
    fn the_text_form_keeps_lines() {
        assert_eq!(
            to_text("<p>Jane <b>Doe</b><br>Sales &amp; Support</p><p>ACME</p>"),
            "Jane Doe\nSales & Support\n\nACME"
        );
        assert_eq!(
            to_text("<div>Caf&eacute; &#8212; <i>open</i></div>"),
            "Café — open"
        );
    }
}
