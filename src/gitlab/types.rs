//! The parts of GitLab's JSON that rp-devops reads. Unknown fields are
//! ignored and optional ones default, so a newer GitLab does not break us.

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct User {
    #[serde(default)]
    pub id: u64,
    #[serde(default)]
    pub username: String,
    #[serde(default)]
    pub name: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Issue {
    pub id: u64,
    pub iid: u64,
    #[serde(default)]
    pub project_id: u64,
    pub title: String,
    #[serde(default)]
    pub description: Option<String>,
    /// `opened` or `closed`.
    pub state: String,
    #[serde(default)]
    pub labels: Vec<String>,
    pub web_url: String,
    #[serde(default)]
    pub created_at: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Project {
    pub id: u64,
    #[serde(default)]
    pub path_with_namespace: String,
    pub web_url: String,
}

impl Issue {
    pub fn is_closed(&self) -> bool {
        self.state == "closed"
    }

    pub fn description(&self) -> &str {
        self.description.as_deref().unwrap_or_default()
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct Note {
    pub id: u64,
    #[serde(default)]
    pub body: String,
    #[serde(default)]
    pub system: bool,
    pub author: Option<User>,
    #[serde(default)]
    pub created_at: Option<String>,
}
