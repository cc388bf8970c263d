//! The rules of escalating a Freshdesk ticket into a GitLab issue (SPEC §8),
//! as plain functions over data: the markers that make re-runs idempotent,
//! the issue title and description, one note per conversation, the link-back
//! note on the ticket and how rp-devops recognises its own notes among the
//! ticket's conversations. No I/O: `ops::escalate` does the talking.
//!
//! Ticket text is hostile. Everything taken from it goes through
//! [`markdown::neutralize`] (no quick action at a line start, no HTML
//! comment), and markers are only read where rp-devops writes them: the
//! first line of a description or note.

pub mod markdown;

use crate::freshdesk::{Conversation, Ticket};

/// GitLab's longest issue title.
const MAX_TITLE_CHARS: usize = 255;

/// `<!-- rp-devops:freshdesk ticket=ID -->`: the first line of an issue made
/// from a ticket.
pub fn issue_marker(ticket: u64) -> String {
    format!("<!-- rp-devops:freshdesk ticket={ticket} -->")
}

/// `<!-- rp-devops:freshdesk-conversation id=ID -->`: the first line of the
/// note made from a conversation.
pub fn conversation_marker(conversation: u64) -> String {
    format!("<!-- rp-devops:freshdesk-conversation id={conversation} -->")
}

/// Whether `description` is rp-devops's issue for `ticket`: its first line
/// is the marker (ticket text, placed further down and neutralised, can
/// never be).
pub fn is_issue_for(description: &str, ticket: u64) -> bool {
    first_line(description) == Some(issue_marker(ticket).as_str())
}

/// The conversation a note was made from, read from the note's first line.
pub fn noted_conversation(note_body: &str) -> Option<u64> {
    first_line(note_body)?
        .strip_prefix("<!-- rp-devops:freshdesk-conversation id=")?
        .strip_suffix(" -->")?
        .parse()
        .ok()
}

fn first_line(text: &str) -> Option<&str> {
    text.lines().map(str::trim).find(|line| !line.is_empty())
}

/// `[Freshdesk #ID] SUBJECT`, on one line, at most 255 characters.
pub fn issue_title(ticket: &Ticket) -> String {
    let subject = one_line(&ticket.subject);
    let subject = if subject.is_empty() {
        "(no subject)".to_owned()
    } else {
        subject
    };
    let title = format!("[Freshdesk #{}] {subject}", ticket.id);
    match title.char_indices().nth(MAX_TITLE_CHARS) {
        None => title,
        Some(_) => {
            let cut: String = title.chars().take(MAX_TITLE_CHARS - 1).collect();
            format!("{}…", cut.trim_end())
        }
    }
}

fn one_line(text: &str) -> String {
    text.split(|c: char| c.is_control() || c.is_whitespace())
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Text for inside Markdown link brackets or a table cell: one line, with
/// the characters that would end or nest the construct escaped.
pub fn inline_text(text: &str) -> String {
    let mut out = String::new();
    for c in one_line(text).chars() {
        if matches!(
            c,
            '[' | ']' | '\\' | '*' | '_' | '`' | '<' | '>' | '|' | '!'
        ) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// An attachment as it ended up in GitLab.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CopiedAttachment {
    /// Uploaded to the project; `url` is GitLab's (project-relative) link.
    Uploaded {
        name: String,
        url: String,
        bytes: u64,
        image: bool,
    },
    /// Too large for GitLab: linked to its lasting place in Freshdesk.
    /// `limit` is the configured one; `None` when GitLab itself refused it.
    TooLarge {
        name: String,
        bytes: Option<u64>,
        limit: Option<u64>,
        freshdesk_url: String,
    },
    /// A dry run: would be uploaded.
    Planned { name: String, bytes: Option<u64> },
}

impl CopiedAttachment {
    fn markdown(&self) -> String {
        match self {
            CopiedAttachment::Uploaded {
                name,
                url,
                bytes,
                image,
            } => {
                let bang = if *image { "!" } else { "" };
                format!(
                    "- {bang}[{}]({url}) ({})",
                    inline_text(name),
                    bytesize::ByteSize(*bytes)
                )
            }
            CopiedAttachment::TooLarge {
                name,
                bytes,
                limit,
                freshdesk_url,
            } => format!(
                "- [{}]({freshdesk_url}){}: **not copied**, {}; open it in Freshdesk",
                inline_text(name),
                bytes.map_or_else(String::new, |b| format!(" ({})", bytesize::ByteSize(b))),
                match limit {
                    Some(limit) => format!(
                        "larger than GitLab's upload limit of {}",
                        bytesize::ByteSize(*limit)
                    ),
                    None => "GitLab refused it as too large".to_owned(),
                }
            ),
            CopiedAttachment::Planned { name, bytes } => format!(
                "- {}{} (to be uploaded)",
                inline_text(name),
                bytes.map_or_else(String::new, |b| format!(" ({})", bytesize::ByteSize(b)))
            ),
        }
    }
}

fn attachments_section(attachments: &[CopiedAttachment]) -> String {
    if attachments.is_empty() {
        return String::new();
    }
    let mut out = String::from("\n\n**Attachments**\n\n");
    let lines: Vec<String> = attachments.iter().map(CopiedAttachment::markdown).collect();
    out.push_str(&lines.join("\n"));
    out
}

/// The issue description: marker, where the ticket is and who asked, the
/// description as Markdown, the attachments.
pub fn issue_description(
    ticket: &Ticket,
    ticket_url: &str,
    attachments: &[CopiedAttachment],
) -> String {
    let header = format!(
        "**Freshdesk ticket [#{id}]({ticket_url})** · requester: {requester} · status: {status} · \
         priority: {priority}{created}",
        id = ticket.id,
        requester = inline_text(&ticket.requester_name()),
        status = inline_text(&ticket.status_name()),
        priority = inline_text(&ticket.priority_name()),
        created = ticket
            .created_at
            .as_deref()
            .map_or_else(String::new, |c| format!(" · opened {}", inline_text(c))),
    );
    let body = markdown::to_markdown(&ticket.description, &ticket.description_text);
    let body = if body.trim().is_empty() {
        "*(no description)*".to_owned()
    } else {
        body
    };
    let rest = format!(
        "{header}\n\n---\n\n{body}{}\n\n---\n\n*Escalated from Freshdesk by rp-devops: the ticket's \
         conversations follow as notes. `rp-devops escalate {id} --sync` copies newer ones.*",
        attachments_section(attachments),
        id = ticket.id
    );
    format!(
        "{}\n\n{}\n",
        issue_marker(ticket.id),
        markdown::neutralize(&rest)
    )
}

/// Who wrote a conversation, as far as the conversation says.
pub fn conversation_author(ticket: &Ticket, conversation: &Conversation) -> String {
    if conversation.user_id.is_some() && conversation.user_id == ticket.requester_id {
        return ticket.requester_name();
    }
    match (&conversation.from_email, conversation.user_id) {
        (Some(email), _) if !email.trim().is_empty() => email.trim().to_owned(),
        (_, Some(id)) => format!("user {id}"),
        _ => "unknown".to_owned(),
    }
}

/// One note per conversation: marker, author, time, private or public, the
/// body as Markdown, the attachments.
pub fn conversation_note(
    ticket: &Ticket,
    conversation: &Conversation,
    attachments: &[CopiedAttachment],
) -> String {
    let kind = match (conversation.private, conversation.incoming) {
        (true, _) => "🔒 **Private note** (agents only) by",
        (false, true) => "**Reply from**",
        (false, false) => "**Public reply by**",
    };
    let when = conversation
        .created_at
        .as_deref()
        .map_or_else(String::new, |c| format!(" · {}", inline_text(c)));
    let body = markdown::to_markdown(&conversation.body, &conversation.body_text);
    let body = if body.trim().is_empty() {
        "*(no text)*".to_owned()
    } else {
        body
    };
    let rest = format!(
        "{kind} {}{when} · Freshdesk conversation {}\n\n{body}{}",
        inline_text(&conversation_author(ticket, conversation)),
        conversation.id,
        attachments_section(attachments)
    );
    format!(
        "{}\n\n{}\n",
        conversation_marker(conversation.id),
        markdown::neutralize(&rest)
    )
}

/// Text every link-back note carries, to find them among conversations.
const LINK_BACK_LEAD: &str = "Escalated to GitLab:";

/// The private note left on the ticket: the issue's URL, and what to do next.
pub fn link_back_html(ticket: u64, issue_url: &str, reference: &str) -> String {
    let url = html_escape(issue_url);
    format!(
        "<div>{LINK_BACK_LEAD} <a href=\"{url}\">{}</a></div>\
         <div>Conversations are copied there as notes by rp-devops; new ones with \
         <code>rp-devops escalate {ticket} --sync</code> (or the Escalate button again).</div>",
        html_escape(reference)
    )
}

/// Whether a conversation is a link-back note by rp-devops (for any issue):
/// a private note by an agent with the lead text and a link to an issue.
/// These are never copied into GitLab.
pub fn is_link_back(conversation: &Conversation) -> bool {
    conversation.private
        && !conversation.incoming
        && [&conversation.body, &conversation.body_text]
            .iter()
            .any(|text| text.contains(LINK_BACK_LEAD) && text.contains("/-/issues/"))
}

/// Whether a conversation is rp-devops's link-back note for `issue_url`
/// (Freshdesk may rewrite the HTML, so the URL is looked for in the text too).
pub fn is_link_back_for(conversation: &Conversation, issue_url: &str) -> bool {
    is_link_back(conversation)
        && (mentions_url(&conversation.body, issue_url)
            || mentions_url(&conversation.body_text, issue_url))
}

/// `url` occurs in `text` as a whole (`…/issues/1` is not in `…/issues/12`).
fn mentions_url(text: &str, url: &str) -> bool {
    text.match_indices(url).any(|(start, _)| {
        text[start + url.len()..]
            .chars()
            .next()
            .is_none_or(|c| !(c.is_ascii_alphanumeric() || c == '_' || c == '-'))
    })
}

/// Issue numbers that rp-devops's link-back notes among `conversations`
/// point at. Only candidates: the caller checks each issue's marker.
pub fn linked_issue_iids(conversations: &[Conversation]) -> Vec<u64> {
    let mut iids = Vec::new();
    for c in conversations.iter().filter(|c| is_link_back(c)) {
        for text in [&c.body, &c.body_text] {
            for (start, found) in text.match_indices("/-/issues/") {
                if let Some(iid) = leading_number(&text[start + found.len()..]) {
                    if !iids.contains(&iid) {
                        iids.push(iid);
                    }
                }
            }
        }
    }
    iids
}

/// The issue number of a GitLab issue URL (`…/-/issues/12`).
pub fn iid_from_issue_url(url: &str) -> Option<u64> {
    let url = url.trim().trim_end_matches('/');
    let (_, rest) = url.rsplit_once("/-/issues/")?;
    rest.chars().all(|c| c.is_ascii_digit()).then_some(())?;
    leading_number(rest)
}

fn leading_number(text: &str) -> Option<u64> {
    let digits: String = text
        .chars()
        .take_while(char::is_ascii_digit)
        .take(12)
        .collect();
    digits.parse().ok()
}

fn html_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ticket(json: &str) -> Ticket {
        serde_json::from_str(json).unwrap()
    }

    fn conversation(json: &str) -> Conversation {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn the_marker_counts_only_on_the_first_line() {
        let t = ticket(
            r#"{"id": 7, "subject": "Crash", "description": "<p>&lt;!-- rp-devops:freshdesk ticket=9 --&gt;</p><!-- rp-devops:freshdesk ticket=9 -->"}"#,
        );
        let description = issue_description(&t, "https://fd/a/tickets/7", &[]);
        assert!(is_issue_for(&description, 7));
        assert!(!is_issue_for(&description, 9));
        assert_eq!(description.matches("<!--").count(), 1, "{description}");
        // A description someone wrote by hand with the marker further down.
        assert!(!is_issue_for(
            "hello\n<!-- rp-devops:freshdesk ticket=7 -->",
            7
        ));
    }

    #[test]
    fn notes_carry_their_conversation_on_the_first_line_only() {
        let t = ticket(
            r#"{"id": 7, "requester_id": 1, "requester": {"name": "Ann", "email": "ann@x.org"}}"#,
        );
        let c = conversation(
            r#"{"id": 44, "user_id": 1, "incoming": true, "body": "<div>/close</div><div>&lt;!-- rp-devops:freshdesk-conversation id=45 --&gt;</div>", "created_at": "2026-01-02T03:04:05Z"}"#,
        );
        let note = conversation_note(&t, &c, &[]);
        assert_eq!(noted_conversation(&note), Some(44));
        assert!(
            note.contains("**Reply from** Ann \\<ann@x.org\\>"),
            "{note}"
        );
        assert!(note.contains("\\/close"), "{note}");
        assert_eq!(note.matches("<!--").count(), 1, "{note}");
        assert_eq!(
            noted_conversation("text\n<!-- rp-devops:freshdesk-conversation id=3 -->"),
            None
        );
    }

    #[test]
    fn private_notes_say_so() {
        let t = ticket(r#"{"id": 7}"#);
        let c = conversation(
            r#"{"id": 3, "private": true, "user_id": 9, "body": "<div>internal</div>"}"#,
        );
        let note = conversation_note(&t, &c, &[]);
        assert!(note.contains("Private note"), "{note}");
        assert!(note.contains("user 9"), "{note}");
    }

    #[test]
    fn titles_are_one_bounded_line() {
        let t = ticket(r#"{"id": 12, "subject": "Backup\nfails\tat night"}"#);
        assert_eq!(issue_title(&t), "[Freshdesk #12] Backup fails at night");
        let long = ticket(&format!(
            r#"{{"id": 12, "subject": "{}"}}"#,
            "é".repeat(400)
        ));
        assert_eq!(issue_title(&long).chars().count(), 255);
        assert_eq!(
            issue_title(&ticket(r#"{"id": 1}"#)),
            "[Freshdesk #1] (no subject)"
        );
    }

    #[test]
    fn attachments_are_listed_and_oversize_ones_said() {
        let t = ticket(r#"{"id": 7, "description": "<p>see files</p>"}"#);
        let description = issue_description(
            &t,
            "https://fd/a/tickets/7",
            &[
                CopiedAttachment::Uploaded {
                    name: "shot].png".into(),
                    url: "/uploads/abc/shot.png".into(),
                    bytes: 2048,
                    image: true,
                },
                CopiedAttachment::TooLarge {
                    name: "core.dump".into(),
                    bytes: Some(300 * 1024 * 1024),
                    limit: Some(100 * 1024 * 1024),
                    freshdesk_url: "https://fd/helpdesk/attachments/5".into(),
                },
            ],
        );
        assert!(
            description.contains("- ![shot\\].png](/uploads/abc/shot.png) (2.0 KiB)"),
            "{description}"
        );
        assert!(
            description.contains("- [core.dump](https://fd/helpdesk/attachments/5) (300.0 MiB): **not copied**, larger than GitLab's upload limit of 100.0 MiB"),
            "{description}"
        );
    }

    #[test]
    fn link_back_notes_are_recognised_by_their_issue_url() {
        let url = "https://gitlab.example.com/support/esc/-/issues/12";
        let note = conversation(
            &serde_json::json!({
                "id": 90, "private": true, "incoming": false,
                "body": link_back_html(7, url, "support/esc#12"),
            })
            .to_string(),
        );
        assert!(is_link_back_for(&note, url));
        assert!(!is_link_back_for(
            &note,
            "https://gitlab.example.com/support/esc/-/issues/1"
        ));
        assert_eq!(linked_issue_iids(std::slice::from_ref(&note)), vec![12]);
        // A customer quoting the note is not rp-devops.
        let quoted = Conversation {
            private: false,
            incoming: true,
            ..note
        };
        assert!(!is_link_back_for(&quoted, url));
        assert!(linked_issue_iids(&[quoted]).is_empty());
    }

    #[test]
    fn issue_urls() {
        let project = "https://gitlab.example.com/support/esc";
        assert_eq!(
            iid_from_issue_url(&format!("{project}/-/issues/12")),
            Some(12)
        );
        assert_eq!(
            iid_from_issue_url(&format!("{project}/-/issues/12/")),
            Some(12)
        );
        assert_eq!(iid_from_issue_url(&format!("{project}/-/issues/12x")), None);
        assert_eq!(iid_from_issue_url("not a url"), None);
    }
}
