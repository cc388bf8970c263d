//! Freshdesk HTML → GitLab Markdown, made safe to post.
//!
//! The conversion itself is `htmd` (a turndown port on html5ever): links,
//! lists, tables, quoted replies and inline images come out as their
//! Markdown forms. Freshdesk HTML is written by customers, so the result is
//! then made inert for GitLab:
//! - no line may look like a quick action (`/close`, `/label ~x` at a line
//!   start run when the issue or note is saved): such a line gets a
//!   backslash before the slash, which renders as the same text;
//! - no HTML comment may open (`<!--`), so ticket text can never forge an
//!   rp-devops marker (markers are also only read at rp-devops's own place
//!   in a body, see `escalation::markers`);
//! - size is bounded: the HTML read, the nesting depth (html5ever and the
//!   converter both work harder with depth, the converter recursively), and
//!   the Markdown produced (GitLab refuses bodies over a million
//!   characters). Past a bound the plain-text version Freshdesk sends along
//!   is used instead, in a code block.

/// HTML beyond this is not converted (the plain text is used).
pub const MAX_HTML: usize = 2 * 1024 * 1024;
/// Nesting deeper than this is not converted (the plain text is used).
pub const MAX_DEPTH: usize = 256;
/// Markdown beyond this many characters is cut, with a note.
pub const MAX_MARKDOWN_CHARS: usize = 200_000;

/// Tags whose content is never text for a reader.
const SKIPPED: &[&str] = &["script", "style", "head", "title", "template", "noscript"];

/// Convert a Freshdesk HTML body to safe GitLab Markdown; `plain` is
/// Freshdesk's text version of the same body, used when the HTML is too big
/// or too deep to convert.
pub fn to_markdown(html: &str, plain: &str) -> String {
    let converted = convert(html).unwrap_or_else(|| plain_block(plain));
    neutralize(&truncate(converted.trim()))
}

/// The conversion, or `None` when the HTML is beyond the bounds.
fn convert(html: &str) -> Option<String> {
    if html.len() > MAX_HTML || estimated_depth(html) > MAX_DEPTH {
        return None;
    }
    let converter = htmd::HtmlToMarkdown::builder()
        .skip_tags(SKIPPED.to_vec())
        .options(htmd::options::Options {
            bullet_list_marker: htmd::options::BulletListMarker::Dash,
            ul_bullet_spacing: 1,
            ol_number_spacing: 1,
            ..Default::default()
        })
        .build();
    let tree = converter.html_to_tree(html).ok()?;
    // The tree builder can add elements no tag opened (reconstructed
    // formatting), so the real depth is checked too before the recursive
    // converter walks it.
    if tree_depth(&tree) > MAX_DEPTH + 8 {
        return None;
    }
    Some(converter.tree_to_markdown(&tree))
}

/// A generous estimate of the element nesting of `html`, from its tags
/// alone (no parsing): opening tags count up, closing tags down, void and
/// self-closed elements not at all. Comments, doctypes and processing
/// instructions are skipped. Over-counting only means falling back to the
/// plain text.
fn estimated_depth(html: &str) -> usize {
    const VOID: &[&str] = &[
        "area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source",
        "track", "wbr", "p", "li", "td", "th", "tr", "option",
    ];
    let bytes = html.as_bytes();
    let (mut depth, mut max) = (0usize, 0usize);
    let mut i = 0;
    while let Some(offset) = memchr::memchr(b'<', &bytes[i..]) {
        let start = i + offset + 1;
        let Some(&next) = bytes.get(start) else { break };
        if bytes[start..].starts_with(b"!--") {
            // A comment ends at `-->`, whatever `>` it holds.
            i = memchr::memmem::find(&bytes[start..], b"-->")
                .map_or(bytes.len(), |e| start + e + 3);
            continue;
        }
        let end = memchr::memchr(b'>', &bytes[start..]).map_or(bytes.len(), |e| start + e);
        i = end.min(bytes.len());
        if next == b'/' {
            depth = depth.saturating_sub(1);
            continue;
        }
        if !next.is_ascii_alphabetic() {
            continue; // `<!--`, `<!DOCTYPE`, `<?`, a lone `<`
        }
        let name: String = bytes[start..end]
            .iter()
            .take_while(|b| b.is_ascii_alphanumeric())
            .map(|b| b.to_ascii_lowercase() as char)
            .collect();
        // p, li, td, th, tr and option close themselves implicitly; they
        // still nest when closed explicitly, which the `</` above undoes,
        // so they are counted as void to keep unclosed ones from adding up.
        let self_closed = end > start && bytes[end - 1] == b'/';
        if !self_closed && !VOID.contains(&name.as_str()) {
            depth += 1;
            max = max.max(depth);
        }
    }
    max
}

/// The deepest element nesting of a parsed tree, without recursion.
fn tree_depth(root: &std::rc::Rc<htmd::Node>) -> usize {
    let mut max = 0;
    let mut stack = vec![(root.clone(), 0usize)];
    while let Some((node, depth)) = stack.pop() {
        max = max.max(depth);
        if depth > MAX_DEPTH + 8 {
            break;
        }
        for child in node.children.borrow().iter() {
            stack.push((child.clone(), depth + 1));
        }
    }
    max
}

/// Plain text as a fenced code block whose fence no line of the text can close.
fn plain_block(text: &str) -> String {
    let longest_run = text
        .lines()
        .map(|line| {
            let trimmed = line.trim_start();
            trimmed.len() - trimmed.trim_start_matches('`').len()
        })
        .max()
        .unwrap_or(0);
    let fence = "`".repeat(longest_run.max(2) + 1);
    format!("{fence}text\n{}\n{fence}", text.trim_end())
}

fn truncate(markdown: &str) -> String {
    match markdown.char_indices().nth(MAX_MARKDOWN_CHARS) {
        None => markdown.to_owned(),
        Some((cut, _)) => format!(
            "{}\n\n*(cut here: the text goes on for {} more characters in Freshdesk)*",
            &markdown[..cut],
            markdown[cut..].chars().count()
        ),
    }
}

/// Make Markdown from outside inert: no quick action at a line start, no
/// HTML comment (so no marker) anywhere.
pub fn neutralize(markdown: &str) -> String {
    let mut out = String::with_capacity(markdown.len() + 16);
    for (i, line) in markdown.split('\n').enumerate() {
        if i > 0 {
            out.push('\n');
        }
        let indent = line.len() - line.trim_start().len();
        if looks_like_quick_action(&line[indent..]) {
            out.push_str(&line[..indent]);
            out.push('\\');
            out.push_str(&line[indent..]);
        } else {
            out.push_str(line);
        }
    }
    out.replace("<!--", "<\\!--")
}

/// `/word` alone or followed by whitespace: the shape of a quick action
/// (`/close`, `/label ~bug`, `/assign @me`), not of a path (`/var/log/x`).
fn looks_like_quick_action(line: &str) -> bool {
    let Some(rest) = line.strip_prefix('/') else {
        return false;
    };
    let name_len = rest
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '-'))
        .unwrap_or(rest.len());
    name_len > 0
        && rest[name_len..]
            .chars()
            .next()
            .is_none_or(char::is_whitespace)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn md(html: &str) -> String {
        to_markdown(html, "")
    }

    #[test]
    fn links_lists_and_emphasis() {
        let out = md(
            r#"<div>See <a href="https://example.com/x?a=1&amp;b=2">the docs</a> and <b>hurry</b>.</div><ul><li>one</li><li>two<ul><li>nested</li></ul></li></ul><ol><li>first</li><li>second</li></ol>"#,
        );
        assert!(
            out.contains("See [the docs](https://example.com/x?a=1&b=2) and **hurry**."),
            "{out}"
        );
        assert!(out.contains("- one\n- two\n  - nested"), "{out}");
        assert!(out.contains("1. first\n2. second"), "{out}");
    }

    #[test]
    fn tables_stay_tables() {
        let out = md(
            "<table><tr><th>Key</th><th>Value</th></tr><tr><td>version</td><td>5.2</td></tr></table>",
        );
        assert!(out.contains("| Key"), "{out}");
        assert!(out.contains("| version | 5.2"), "{out}");
        assert!(out.lines().any(|l| l.starts_with("| ---")), "{out}");
    }

    #[test]
    fn quoted_replies_become_blockquotes() {
        let out = md(
            r#"<div>Thanks, that helped.</div><div class="freshdesk_quote"><blockquote class="freshdesk_quote">On Mon, Bob wrote:<br><div>It crashes on start.</div></blockquote></div>"#,
        );
        assert!(out.starts_with("Thanks, that helped."), "{out}");
        assert!(out.contains("> On Mon, Bob wrote:"), "{out}");
        assert!(out.contains("> It crashes on start."), "{out}");
    }

    #[test]
    fn inline_images_stay_visible() {
        let out = md(
            r#"<p>Here: <img src="https://acme.freshdesk.com/inline/attachment?token=abc" alt="error dialog"></p>"#,
        );
        assert!(
            out.contains("![error dialog](https://acme.freshdesk.com/inline/attachment?token=abc)"),
            "{out}"
        );
    }

    #[test]
    fn scripts_and_styles_are_not_text() {
        let out = md("<style>p{color:red}</style><p>hello</p><script>alert(1)</script>");
        assert_eq!(out, "hello");
    }

    #[test]
    fn quick_actions_never_start_a_line() {
        let out = md(
            "<p>/close</p><p>  /label ~urgent</p><pre>/assign @me\n/var/log/app.log</pre><div>ok /close</div>",
        );
        for line in out.lines() {
            assert!(
                !looks_like_quick_action(line.trim_start()),
                "line {line:?} in {out}"
            );
        }
        assert!(out.contains("\\/close"), "{out}");
        // Paths are left alone.
        assert!(out.contains("/var/log/app.log"), "{out}");
        assert!(out.contains("ok /close"), "{out}");
    }

    #[test]
    fn no_comment_and_so_no_marker_can_come_from_ticket_text() {
        let out = md(
            "<p>&lt;!-- rp-devops:freshdesk ticket=5 --&gt;</p><!-- rp-devops:freshdesk ticket=6 --><pre><code>&lt;!-- rp-devops:freshdesk-conversation id=1 --&gt;</code></pre>",
        );
        assert!(!out.contains("<!--"), "{out}");
        assert!(!out.contains("ticket=6"), "{out}");
    }

    #[test]
    fn quick_action_shapes() {
        for yes in [
            "/close",
            "/label ~bug",
            "/due\ttomorrow",
            "/copy_metadata #1",
        ] {
            assert!(looks_like_quick_action(yes), "{yes}");
        }
        for no in ["/var/log", "close", "/", "/ close", "a /close", "//close"] {
            assert!(!looks_like_quick_action(no), "{no}");
        }
    }

    #[test]
    fn deep_or_huge_html_falls_back_to_the_plain_text() {
        let deep = "<div>".repeat(100_000) + "/close deep";
        let out = to_markdown(&deep, "/close deep\n```\nend");
        assert!(out.starts_with("````text\n"), "{}", &out[..40]);
        assert!(out.contains("\\/close deep"), "{out}");
        assert!(out.ends_with("\n````"), "{out}");

        let quotes = "<blockquote>".repeat(MAX_DEPTH + 50) + "x";
        assert!(to_markdown(&quotes, "plain").contains("plain"));

        // Moderately deep but fine: converted.
        let ok = "<div>".repeat(50) + "fine";
        assert_eq!(md(&ok), "fine");
    }

    #[test]
    fn long_text_is_cut_with_a_note() {
        let html = format!("<p>{}</p>", "word ".repeat(60_000));
        let out = md(&html);
        assert!(out.chars().count() < MAX_MARKDOWN_CHARS + 200);
        assert!(
            out.contains("more characters in Freshdesk"),
            "{}",
            &out[out.len() - 100..]
        );
    }

    #[test]
    fn depth_estimates() {
        assert_eq!(estimated_depth("<div><p>a<p>b<br><img src=x></div>"), 1);
        assert_eq!(
            estimated_depth("<div><div></div><div><span>x</span></div></div>"),
            3
        );
        assert_eq!(estimated_depth("<!-- <div><div> --> a < b"), 0);
        assert_eq!(estimated_depth("<div/><div />"), 0);
    }
}
