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

/// The text form of sanitized HTML: tags dropped, line breaks where blocks and `<br>` were,
/// entities decoded, blank runs collapsed.
pub fn to_text(html: &str) -> String {
    let mut text = String::with_capacity(html.len());
    let mut rest = html;
    while let Some(start) = rest.find('<') {
        text.push_str(&rest[..start]);
        let Some(end) = rest[start..].find('>') else {
            break;
        };
        let tag = rest[start + 1..start + end]
            .trim_start_matches('/')
            .split(|c: char| c.is_whitespace() || c == '/')
            .next()
            .unwrap_or_default()
            .to_ascii_lowercase();
        if matches!(
            tag.as_str(),
            "br" | "p" | "div" | "li" | "tr" | "h1" | "h2" | "h3" | "h4" | "h5" | "h6" | "table"
        ) {
            text.push('\n');
        }
        rest = &rest[start + end + 1..];
    }
    text.push_str(rest);
    let decoded = text
        .replace("&nbsp;", " ")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&");
    let lines: Vec<&str> = decoded.lines().map(str::trim_end).collect();
    let mut out = String::new();
    for line in lines {
        if line.trim().is_empty() && (out.is_empty() || out.ends_with("\n\n")) {
            continue;
        }
        out.push_str(line.trim_start());
        out.push('\n');
    }
    out.trim_end().to_owned()
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
            to_text("<p>Jane Doe<br>Sales &amp; Support</p><p>ACME</p>"),
            "Jane Doe\nSales & Support\n\nACME"
        );
    }
}
