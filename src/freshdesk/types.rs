//! The parts of Freshdesk's JSON (API v2) that rp-devops reads. Unknown
//! fields are ignored; optional ones, and `null`, default.

use serde::{Deserialize, Deserializer};

/// `null` or missing → the type's default.
fn null_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

#[derive(Debug, Clone, Deserialize)]
pub struct Ticket {
    pub id: u64,
    #[serde(default, deserialize_with = "null_default")]
    pub subject: String,
    /// HTML.
    #[serde(default, deserialize_with = "null_default")]
    pub description: String,
    #[serde(default, deserialize_with = "null_default")]
    pub description_text: String,
    #[serde(default)]
    pub status: Option<u32>,
    #[serde(default)]
    pub priority: Option<u32>,
    #[serde(default)]
    pub requester_id: Option<u64>,
    /// Present with `include=requester`.
    #[serde(default)]
    pub requester: Option<Contact>,
    #[serde(default, deserialize_with = "null_default")]
    pub tags: Vec<String>,
    #[serde(default, deserialize_with = "null_default")]
    pub custom_fields: serde_json::Map<String, serde_json::Value>,
    #[serde(default, deserialize_with = "null_default")]
    pub attachments: Vec<Attachment>,
    #[serde(default)]
    pub created_at: Option<String>,
}

impl Ticket {
    /// Freshdesk's ticket statuses (custom ones show as their number).
    pub fn status_name(&self) -> String {
        match self.status {
            Some(2) => "Open".to_owned(),
            Some(3) => "Pending".to_owned(),
            Some(4) => "Resolved".to_owned(),
            Some(5) => "Closed".to_owned(),
            Some(other) => format!("status {other}"),
            None => "unknown".to_owned(),
        }
    }

    pub fn priority_name(&self) -> String {
        match self.priority {
            Some(1) => "Low".to_owned(),
            Some(2) => "Medium".to_owned(),
            Some(3) => "High".to_owned(),
            Some(4) => "Urgent".to_owned(),
            Some(other) => format!("priority {other}"),
            None => "unknown".to_owned(),
        }
    }

    /// The requester as "Name <email>", as far as it is known.
    pub fn requester_name(&self) -> String {
        match (&self.requester, self.requester_id) {
            (Some(contact), _) => contact.display(),
            (None, Some(id)) => format!("contact {id}"),
            (None, None) => "unknown".to_owned(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct Contact {
    #[serde(default)]
    pub id: Option<u64>,
    #[serde(default, deserialize_with = "null_default")]
    pub name: String,
    #[serde(default, deserialize_with = "null_default")]
    pub email: String,
}

impl Contact {
    pub fn display(&self) -> String {
        match (self.name.trim(), self.email.trim()) {
            ("", "") => self
                .id
                .map_or_else(|| "unknown".to_owned(), |id| format!("contact {id}")),
            (name, "") => name.to_owned(),
            ("", email) => email.to_owned(),
            (name, email) => format!("{name} <{email}>"),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct Conversation {
    pub id: u64,
    /// HTML.
    #[serde(default, deserialize_with = "null_default")]
    pub body: String,
    #[serde(default, deserialize_with = "null_default")]
    pub body_text: String,
    /// From the requester (a reply by email or the portal), not an agent.
    #[serde(default, deserialize_with = "null_default")]
    pub incoming: bool,
    /// A private note: only agents see it.
    #[serde(default, deserialize_with = "null_default")]
    pub private: bool,
    #[serde(default)]
    pub user_id: Option<u64>,
    #[serde(default)]
    pub from_email: Option<String>,
    #[serde(default)]
    pub created_at: Option<String>,
    #[serde(default, deserialize_with = "null_default")]
    pub attachments: Vec<Attachment>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Attachment {
    pub id: u64,
    #[serde(default, deserialize_with = "null_default")]
    pub name: String,
    #[serde(default)]
    pub content_type: Option<String>,
    /// Most answers say `size`; some documentation samples say `file_size`.
    #[serde(default)]
    size: Option<u64>,
    #[serde(default)]
    file_size: Option<u64>,
    /// A pre-signed URL that expires within minutes.
    #[serde(default, deserialize_with = "null_default")]
    pub attachment_url: String,
}

impl Attachment {
    /// The size Freshdesk announced, if it did.
    pub fn size(&self) -> Option<u64> {
        self.size.or(self.file_size)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documented_shapes_parse() {
        let ticket: Ticket =
            serde_json::from_str(include_str!("../../tests/fixtures/freshdesk/ticket.json"))
                .unwrap();
        assert_eq!(ticket.id, 20);
        assert_eq!(ticket.status_name(), "Open");
        assert_eq!(ticket.priority_name(), "Low");
        assert_eq!(ticket.requester_name(), "contact 1");
        assert_eq!(ticket.description, "<div>Not given.</div>");

        let conversations: Vec<Conversation> = serde_json::from_str(include_str!(
            "../../tests/fixtures/freshdesk/conversations.json"
        ))
        .unwrap();
        assert_eq!(conversations.len(), 1);
        assert!(conversations[0].private);

        let reply: Conversation = serde_json::from_str(include_str!(
            "../../tests/fixtures/freshdesk/reply-with-attachment.json"
        ))
        .unwrap();
        assert_eq!(reply.attachments[0].size(), Some(98));
        assert_eq!(reply.attachments[0].name, "data.txt");
    }

    #[test]
    fn file_size_is_accepted_and_nulls_default() {
        let a: Attachment = serde_json::from_str(
            r#"{"id": 1, "name": "a.log", "file_size": 12, "attachment_url": "https://x/y"}"#,
        )
        .unwrap();
        assert_eq!(a.size(), Some(12));
        let t: Ticket = serde_json::from_str(
            r#"{"id": 3, "subject": null, "tags": null, "attachments": null}"#,
        )
        .unwrap();
        assert!(t.tags.is_empty() && t.subject.is_empty());
    }
}

/// The agent an API key belongs to (`GET /api/v2/agents/me`).
#[derive(Debug, Clone, Deserialize)]
pub struct Agent {
    pub id: u64,
    #[serde(default)]
    pub contact: Option<AgentContact>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct AgentContact {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
}
