//! Removing known secret values from text that leaves the program: error
//! messages that quote a URL, a release script's output returned to the
//! uploader.
//!
//! A secret can appear in more than one spelling: as itself, and
//! percent-encoded where it was put into a URL (`https://oauth2:TOKEN@host`
//! with a token holding `/`, `+` or `=` is written `%2F`, `%2B`, `%3D`,
//! in either hex case), or percent-decoded where a URL's userinfo was the
//! source. Every spelling is replaced.
//!
//! Pure: no I/O, no knowledge of where the secrets came from (that is
//! `settings`).

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};

/// What a secret is replaced with.
pub const REDACTED: &str = "[redacted]";

/// The characters a URL's userinfo may carry unencoded (RFC 3986
/// "unreserved"); everything else is how git, curl and browsers encode it.
const USERINFO: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// A set of secret values, in every spelling, ready to be removed from text.
#[derive(Clone, Default)]
pub struct Redactor {
    /// Longest first, so a secret that contains another is replaced whole.
    forms: Vec<Vec<u8>>,
}

impl std::fmt::Debug for Redactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Redactor({} form(s))", self.forms.len())
    }
}

impl Redactor {
    /// A redactor for `secrets` (empty values are ignored).
    pub fn new<'a>(secrets: impl IntoIterator<Item = &'a str>) -> Self {
        let mut forms: Vec<Vec<u8>> = Vec::new();
        for secret in secrets {
            for form in spellings(secret) {
                if !form.is_empty() && !forms.iter().any(|f| f == form.as_bytes()) {
                    forms.push(form.into_bytes());
                }
            }
        }
        forms.sort_by_key(|f| std::cmp::Reverse(f.len()));
        Self { forms }
    }

    pub fn is_empty(&self) -> bool {
        self.forms.is_empty()
    }

    /// The length of the longest spelling: text cut anywhere may hold a
    /// partial secret at most this long minus one.
    pub fn longest(&self) -> usize {
        self.forms.first().map_or(0, Vec::len)
    }

    /// `text` with every spelling of every secret replaced by [`REDACTED`].
    pub fn redact(&self, text: &str) -> String {
        if self.forms.is_empty() {
            return text.to_owned();
        }
        // Replacing whole UTF-8 sequences by ASCII keeps the text UTF-8.
        String::from_utf8(self.redact_bytes(text.as_bytes()))
            .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
    }

    /// [`Redactor::redact`] over bytes that need not be UTF-8.
    pub fn redact_bytes(&self, text: &[u8]) -> Vec<u8> {
        let mut out = text.to_vec();
        for form in &self.forms {
            if memchr::memmem::find(&out, form).is_none() {
                continue;
            }
            let mut replaced = Vec::with_capacity(out.len());
            let mut rest = out.as_slice();
            while let Some(at) = memchr::memmem::find(rest, form) {
                replaced.extend_from_slice(&rest[..at]);
                replaced.extend_from_slice(REDACTED.as_bytes());
                rest = &rest[at + form.len()..];
            }
            replaced.extend_from_slice(rest);
            out = replaced;
        }
        out
    }
}

/// Every way `secret` may be written: as is, percent-encoded (upper- and
/// lower-case hex) and percent-decoded.
fn spellings(secret: &str) -> Vec<String> {
    let mut forms = vec![secret.to_owned()];
    let encoded = utf8_percent_encode(secret, USERINFO).to_string();
    if encoded != secret {
        forms.push(lower_hex(&encoded));
        forms.push(encoded);
    }
    if let Ok(decoded) = percent_decode_str(secret).decode_utf8() {
        if decoded != secret {
            forms.push(decoded.into_owned());
        }
    }
    forms
}

/// `%2F` → `%2f`, leaving everything else alone.
fn lower_hex(encoded: &str) -> String {
    let mut out = String::with_capacity(encoded.len());
    let mut after_percent = 0;
    for c in encoded.chars() {
        if c == '%' {
            after_percent = 2;
            out.push(c);
        } else if after_percent > 0 {
            after_percent -= 1;
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_spelling_is_replaced() {
        let r = Redactor::new(["ab/c+d=", ""]);
        let text = "raw ab/c+d= upper ab%2Fc%2Bd%3D lower ab%2fc%2bd%3d";
        assert_eq!(
            r.redact(text),
            "raw [redacted] upper [redacted] lower [redacted]"
        );
        // A secret given in its URL form is found decoded too.
        let r = Redactor::new(["p%40ss"]);
        assert_eq!(r.redact("x p@ss y p%40ss"), "x [redacted] y [redacted]");
    }

    #[test]
    fn longer_secrets_first_and_nothing_else_changes() {
        let r = Redactor::new(["abc", "abcdef"]);
        assert_eq!(r.redact("abcdef abc ab"), "[redacted] [redacted] ab");
        assert_eq!(r.longest(), 6);
        let none = Redactor::new(std::iter::empty());
        assert!(none.is_empty());
        assert_eq!(none.redact("abc"), "abc");
        assert_eq!(
            r.redact_bytes(b"\xff abc \xfe"),
            b"\xff [redacted] \xfe".to_vec()
        );
    }
}
