//! Escalate a Freshdesk ticket into one GitLab issue (SPEC §8): the
//! operation behind `rp-devops escalate` and `serve`'s escalation endpoint.
//!
//! Every run ends in the same state, whatever an earlier run left: one issue
//! carrying the ticket's marker, one note per conversation (each with its
//! conversation marker), and the link back on the ticket (a private note
//! with the issue URL, the tag, `link_field`). So a run that failed halfway
//! is finished by the next, with nothing written twice:
//! - the issue is found by `link_field`, by rp-devops's link-back note among
//!   the ticket's conversations, or by listing the issues with the first
//!   label; each candidate must carry the marker on its first line;
//! - notes already there are recognised by their marker;
//! - the link-back note is looked for (by the issue URL) before it is added.
//!
//! Attachment URLs from Freshdesk expire within minutes, so every attachment
//! the run needs is downloaded (to a temporary directory, bounded by the
//! upload limit) before anything is uploaded or created.

use std::collections::HashSet;
use std::path::PathBuf;

use anyhow::{Context, Result};
use serde::Serialize;

use crate::config::FreshdeskConfig;
use crate::escalation::{self, CopiedAttachment};
use crate::freshdesk::{Attachment, Conversation, Download, Freshdesk, Ticket, TicketUpdate};
use crate::gitlab::{ApiError, GitLab, Issue, NewIssue, is_status};

/// What to escalate, and where to.
#[derive(Debug, Clone)]
pub struct EscalateRequest {
    pub ticket: u64,
    /// Also copy conversations created after the issue was.
    pub sync: bool,
    /// The GitLab project that receives the issue.
    pub project: String,
    /// Labels of the issue; the first is how escalated issues are found.
    pub labels: Vec<String>,
    /// Tag added to the ticket.
    pub tag: Option<String>,
    /// Ticket custom field that receives the issue URL.
    pub link_field: Option<String>,
    /// Attachments above this are linked, not uploaded.
    pub max_attachment_size: u64,
}

impl EscalateRequest {
    /// The request for `ticket` from the `freshdesk:` section, into `project`.
    pub fn new(ticket: u64, sync: bool, project: String, config: &FreshdeskConfig) -> Self {
        Self {
            ticket,
            sync,
            project,
            labels: config
                .labels
                .clone()
                .unwrap_or_else(|| vec![DEFAULT_LABEL.to_owned()]),
            tag: Some(config.tag.clone().unwrap_or_else(|| DEFAULT_TAG.to_owned()))
                .filter(|t| !t.trim().is_empty()),
            link_field: config.link_field.clone().filter(|f| !f.trim().is_empty()),
            max_attachment_size: config.max_attachment_size,
        }
    }
}

/// Label of escalated issues when `freshdesk.labels` is not set.
pub const DEFAULT_LABEL: &str = "freshdesk";
/// Tag added to escalated tickets when `freshdesk.tag` is not set.
pub const DEFAULT_TAG: &str = "escalated";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum EscalationAction {
    /// A new issue.
    Created,
    /// The issue existed; notes or the link back were added.
    Synced,
    /// The issue existed and nothing was missing.
    Unchanged,
    /// Dry run: an issue would be created.
    WouldCreate,
    /// Dry run: the issue exists and notes or the link back would be added.
    WouldSync,
}

impl EscalationAction {
    pub fn as_str(self) -> &'static str {
        match self {
            EscalationAction::Created => "created",
            EscalationAction::Synced => "synced",
            EscalationAction::Unchanged => "unchanged",
            EscalationAction::WouldCreate => "would-create",
            EscalationAction::WouldSync => "would-sync",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IssueRef {
    pub iid: u64,
    pub web_url: String,
}

impl From<&Issue> for IssueRef {
    fn from(issue: &Issue) -> Self {
        Self {
            iid: issue.iid,
            web_url: issue.web_url.clone(),
        }
    }
}

/// The outcome (SPEC §8 JSON).
#[derive(Debug, Clone, Serialize)]
pub struct Escalation {
    pub ticket: u64,
    /// `None` only when a dry run would create it.
    pub issue: Option<IssueRef>,
    pub action: EscalationAction,
    /// Conversation notes added (or, in a dry run, that would be).
    pub notes_added: usize,
    /// Attachments copied (uploaded or linked) by this run.
    pub attachments: usize,
    /// Whether this run added the link back (note, tag or field) on the ticket.
    #[serde(skip)]
    pub linked_back: bool,
}

/// Escalate one ticket. `progress` receives one line per step worth telling
/// (for `-v` and the server log).
pub fn escalate(
    request: &EscalateRequest,
    gitlab: &GitLab,
    freshdesk: &Freshdesk,
    progress: &dyn Fn(String),
) -> Result<Escalation> {
    let id = request.ticket;
    anyhow::ensure!(
        !request.labels.is_empty(),
        "escalate needs at least one label (freshdesk.labels) to find escalated issues again"
    );
    let ticket = freshdesk.ticket(id)?;
    if let Some(field) = &request.link_field {
        // Freshdesk lists every custom field of the account on each ticket;
        // checked now, before anything is written anywhere.
        if !ticket.custom_fields.contains_key(field) {
            return Err(crate::error::UsageError::new(format!(
                "Freshdesk ticket {id} has no custom field {field:?} (freshdesk.link_field)"
            ))
            .with_hint(
                "create it in Freshdesk (Admin → Ticket Fields, a single-line text field; its API \
                 name starts with cf_) or remove freshdesk.link_field",
            )
            .into());
        }
    }
    let conversations = freshdesk.conversations(id)?;
    progress(format!(
        "ticket {id}: {:?}, {} conversation(s), {} attachment(s) on the ticket",
        ticket.subject,
        conversations.len(),
        ticket.attachments.len()
    ));
    let run = Run {
        request,
        gitlab,
        freshdesk,
        ticket: &ticket,
        progress,
        workdir: tempfile::tempdir().context("creating a temporary directory for attachments")?,
    };
    match run.find_issue(&conversations)? {
        Some(issue) => run.finish(issue, &conversations),
        None => run.create(&conversations),
    }
}

struct Run<'a> {
    request: &'a EscalateRequest,
    gitlab: &'a GitLab,
    freshdesk: &'a Freshdesk,
    ticket: &'a Ticket,
    progress: &'a dyn Fn(String),
    workdir: tempfile::TempDir,
}

/// An attachment fetched (or judged) before anything is written.
enum Fetched {
    File(PathBuf, u64),
    TooLarge,
    /// Dry run: not downloaded.
    Skipped,
}

impl Run<'_> {
    fn project(&self) -> &str {
        &self.request.project
    }

    /// The ticket's issue, if an earlier run (or a concurrent one) made it.
    fn find_issue(&self, conversations: &[Conversation]) -> Result<Option<Issue>> {
        if self.gitlab.is_offline() {
            return Ok(None);
        }
        let id = self.ticket.id;
        let mut candidates = Vec::new();
        if let Some(field) = &self.request.link_field {
            if let Some(url) = self
                .ticket
                .custom_fields
                .get(field)
                .and_then(|v| v.as_str())
            {
                candidates.extend(escalation::iid_from_issue_url(url));
            }
        }
        candidates.extend(escalation::linked_issue_iids(conversations));
        let mut seen = HashSet::new();
        for iid in candidates.into_iter().filter(|iid| seen.insert(*iid)) {
            let issue = match self.gitlab.issue(self.project(), iid) {
                Ok(issue) => Some(issue),
                Err(err) if is_status(&err, 404) => None,
                Err(err) => {
                    return Err(err.context(format!("reading issue #{iid} of {}", self.project())));
                }
            };
            if let Some(issue) = issue.filter(|i| escalation::is_issue_for(i.description(), id)) {
                return Ok(Some(issue));
            }
        }
        self.listed_issue()
    }

    /// The earliest issue with the first label whose marker names the ticket.
    fn listed_issue(&self) -> Result<Option<Issue>> {
        let issues = self
            .gitlab
            .issues_with_labels(self.project(), &self.request.labels[..1])
            .with_context(|| {
                format!(
                    "listing issues labelled {:?} in {}",
                    self.request.labels[0],
                    self.project()
                )
            })?;
        Ok(issues
            .into_iter()
            .filter(|i| escalation::is_issue_for(i.description(), self.ticket.id))
            .min_by_key(|i| i.iid))
    }

    /// Everything for a ticket that has no issue yet.
    fn create(&self, conversations: &[Conversation]) -> Result<Escalation> {
        let id = self.ticket.id;
        let to_copy: Vec<&Conversation> = conversations
            .iter()
            .filter(|c| !escalation::is_link_back(c))
            .collect();
        // Download first: the URLs expire within minutes.
        let ticket_files = self.fetch_all(&self.ticket.attachments)?;
        let note_files = to_copy
            .iter()
            .map(|c| self.fetch_all(&c.attachments))
            .collect::<Result<Vec<_>>>()?;

        let mut copied = 0;
        let described = self.upload_all(&self.ticket.attachments, ticket_files, &mut copied)?;
        let new_issue = NewIssue {
            title: escalation::issue_title(self.ticket),
            description: escalation::issue_description(
                self.ticket,
                &self.freshdesk.ticket_url(id),
                &described,
            ),
            labels: self.request.labels.clone(),
        };
        let written = self
            .gitlab
            .create_issue(self.project(), &new_issue, &escalation::issue_marker(id))
            .with_context(|| format!("creating the issue for ticket {id} in {}", self.project()))?;
        let Some(issue) = written.sent() else {
            // Dry run: the notes would follow; the link back would be
            // planned against the new issue's URL.
            self.link_back("(URL of the new issue)", "(the new issue)", conversations)?;
            return Ok(Escalation {
                ticket: id,
                issue: None,
                action: EscalationAction::WouldCreate,
                notes_added: to_copy.len(),
                attachments: copied + to_copy.iter().map(|c| c.attachments.len()).sum::<usize>(),
                linked_back: true,
            });
        };
        (self.progress)(format!("created #{} {}", issue.iid, issue.web_url));

        // Two runs at once (the button and a CI trigger) may both have
        // created one: the earliest issue is the ticket's, ours is closed as
        // its duplicate and the other run (or the next) completes it.
        if let Some(original) = self
            .listed_issue()?
            .filter(|original| original.iid < issue.iid)
        {
            self.close_duplicate(&issue, &original)?;
            return Ok(Escalation {
                ticket: id,
                issue: Some(IssueRef::from(&original)),
                action: EscalationAction::Unchanged,
                notes_added: 0,
                attachments: 0,
                linked_back: false,
            });
        }

        let mut notes_added = 0;
        for (conversation, files) in to_copy.iter().zip(note_files) {
            notes_added += self.add_note(&issue, conversation, files, &mut copied)?;
        }
        let linked_back = self.link_back(&issue.web_url, &reference(&issue), conversations)?;
        Ok(Escalation {
            ticket: id,
            issue: Some(IssueRef::from(&issue)),
            action: EscalationAction::Created,
            notes_added,
            attachments: copied,
            linked_back,
        })
    }

    /// Complete an existing issue: missing notes (and with `--sync` newer
    /// conversations), then the link back.
    fn finish(&self, issue: Issue, conversations: &[Conversation]) -> Result<Escalation> {
        let id = self.ticket.id;
        let noted: HashSet<u64> = self
            .gitlab
            .issue_notes(self.project(), issue.iid)
            .with_context(|| format!("reading the notes of issue #{}", issue.iid))?
            .iter()
            .filter_map(|note| escalation::noted_conversation(&note.body))
            .collect();
        let issue_created = issue.created_at.as_deref().and_then(timestamp);
        let to_copy: Vec<&Conversation> = conversations
            .iter()
            .filter(|c| !escalation::is_link_back(c) && !noted.contains(&c.id))
            .filter(|c| {
                // Without --sync only what the issue should already have:
                // conversations from before it was created.
                self.request.sync
                    || match (issue_created, c.created_at.as_deref().and_then(timestamp)) {
                        (Some(issue), Some(conversation)) => conversation <= issue,
                        _ => true,
                    }
            })
            .collect();
        (self.progress)(format!(
            "ticket {id} is issue #{} ({}): {} note(s) there, {} to add",
            issue.iid,
            issue.web_url,
            noted.len(),
            to_copy.len()
        ));
        let files = to_copy
            .iter()
            .map(|c| self.fetch_all(&c.attachments))
            .collect::<Result<Vec<_>>>()?;
        let mut copied = 0;
        let mut notes_added = 0;
        for (conversation, files) in to_copy.iter().zip(files) {
            notes_added += self.add_note(&issue, conversation, files, &mut copied)?;
        }
        let linked_back = self.link_back(&issue.web_url, &reference(&issue), conversations)?;
        let changed = notes_added > 0 || linked_back;
        let action = match (changed, self.gitlab.is_dry_run()) {
            (false, _) => EscalationAction::Unchanged,
            (true, false) => EscalationAction::Synced,
            (true, true) => EscalationAction::WouldSync,
        };
        Ok(Escalation {
            ticket: id,
            issue: Some(IssueRef::from(&issue)),
            action,
            notes_added,
            attachments: copied,
            linked_back,
        })
    }

    fn close_duplicate(&self, ours: &Issue, original: &Issue) -> Result<()> {
        let marker = format!("<!-- rp-devops:freshdesk-duplicate of={} -->", original.iid);
        let body = format!(
            "{marker}\n\nDuplicate of #{}: another rp-devops run escalated ticket {} at the same time.\n",
            original.iid, self.ticket.id
        );
        self.gitlab
            .create_issue_note(self.project(), ours.iid, &body, &marker)
            .with_context(|| format!("marking issue #{} as a duplicate", ours.iid))?;
        self.gitlab
            .close_issue(self.project(), ours.iid)
            .with_context(|| format!("closing duplicate issue #{}", ours.iid))?;
        (self.progress)(format!(
            "closed #{} as a duplicate of #{} (created at the same time)",
            ours.iid, original.iid
        ));
        Ok(())
    }

    fn add_note(
        &self,
        issue: &Issue,
        conversation: &Conversation,
        files: Vec<Fetched>,
        copied: &mut usize,
    ) -> Result<usize> {
        let attachments = self.upload_all(&conversation.attachments, files, copied)?;
        let body = escalation::conversation_note(self.ticket, conversation, &attachments);
        self.gitlab
            .create_issue_note_visible(
                self.project(),
                issue.iid,
                &body,
                &escalation::conversation_marker(conversation.id),
                conversation.private,
            )
            .with_context(|| {
                format!(
                    "copying conversation {} of ticket {} to issue #{}",
                    conversation.id, self.ticket.id, issue.iid
                )
            })?;
        Ok(1)
    }

    /// Download each attachment now, while its URL is fresh.
    fn fetch_all(&self, attachments: &[Attachment]) -> Result<Vec<Fetched>> {
        let limit = self.request.max_attachment_size;
        attachments
            .iter()
            .map(|attachment| {
                if attachment.size().is_some_and(|size| size > limit) {
                    return Ok(Fetched::TooLarge);
                }
                if self.gitlab.is_dry_run() {
                    return Ok(Fetched::Skipped);
                }
                let path = self.workdir.path().join(attachment.id.to_string());
                let download = self
                    .freshdesk
                    .download(self.ticket.id, attachment, &path, limit)?;
                Ok(match download {
                    Download::Saved(bytes) => Fetched::File(path, bytes),
                    Download::TooLarge => Fetched::TooLarge,
                })
            })
            .collect()
    }

    fn upload_all(
        &self,
        attachments: &[Attachment],
        files: Vec<Fetched>,
        copied: &mut usize,
    ) -> Result<Vec<CopiedAttachment>> {
        let mut out = Vec::new();
        for (attachment, fetched) in attachments.iter().zip(files) {
            *copied += 1;
            let too_large = |bytes: Option<u64>, limit: Option<u64>| CopiedAttachment::TooLarge {
                name: attachment.name.clone(),
                bytes,
                limit,
                freshdesk_url: self.freshdesk.attachment_page_url(attachment.id),
            };
            let limit = Some(self.request.max_attachment_size);
            let (path, bytes) = match fetched {
                Fetched::File(path, bytes) => (path, bytes),
                Fetched::TooLarge => {
                    out.push(too_large(attachment.size(), limit));
                    continue;
                }
                Fetched::Skipped => {
                    out.push(CopiedAttachment::Planned {
                        name: attachment.name.clone(),
                        bytes: attachment.size(),
                    });
                    continue;
                }
            };
            let uploaded = self.gitlab.upload_file(
                self.project(),
                &path,
                &attachment.name,
                attachment.content_type.as_deref(),
            );
            let _ = std::fs::remove_file(&path);
            let upload = match uploaded {
                Ok(written) => written.sent(),
                // GitLab's own limit is lower than the configured one.
                Err(err)
                    if err
                        .downcast_ref::<ApiError>()
                        .is_some_and(|e| e.status == Some(413)) =>
                {
                    out.push(too_large(Some(bytes), None));
                    continue;
                }
                Err(err) => {
                    return Err(err.context(format!(
                        "uploading attachment {:?} of ticket {}",
                        attachment.name, self.ticket.id
                    )));
                }
            };
            out.push(match upload {
                Some(upload) => CopiedAttachment::Uploaded {
                    name: attachment.name.clone(),
                    url: upload.url,
                    bytes,
                    image: attachment
                        .content_type
                        .as_deref()
                        .is_some_and(|t| t.starts_with("image/")),
                },
                None => CopiedAttachment::Planned {
                    name: attachment.name.clone(),
                    bytes: Some(bytes),
                },
            });
        }
        Ok(out)
    }

    /// The private note with the issue URL (unless one is there), the tag
    /// (keeping the others) and `link_field`. Whether anything was written.
    fn link_back(
        &self,
        issue_url: &str,
        reference: &str,
        conversations: &[Conversation],
    ) -> Result<bool> {
        let id = self.ticket.id;
        let mut wrote = false;
        if !conversations
            .iter()
            .any(|c| escalation::is_link_back_for(c, issue_url))
        {
            let html = escalation::link_back_html(id, issue_url, reference);
            self.freshdesk
                .add_private_note(id, &html, issue_url)
                .with_context(|| format!("adding the link to {issue_url} on ticket {id}"))?;
            wrote = true;
        }
        let mut update = TicketUpdate::default();
        if let Some(tag) = &self.request.tag {
            if !self.ticket.tags.iter().any(|t| t.eq_ignore_ascii_case(tag)) {
                let mut tags = self.ticket.tags.clone();
                tags.push(tag.clone());
                update.tags = Some(tags);
            }
        }
        if let Some(field) = &self.request.link_field {
            if self
                .ticket
                .custom_fields
                .get(field)
                .and_then(|v| v.as_str())
                != Some(issue_url)
            {
                let mut fields = serde_json::Map::new();
                fields.insert(field.clone(), serde_json::Value::from(issue_url));
                update.custom_fields = Some(fields);
            }
        }
        if !update.is_empty() {
            self.freshdesk
                .update_ticket(id, &update)
                .with_context(|| format!("tagging ticket {id} and linking it to {issue_url}"))?;
            wrote = true;
        }
        if wrote {
            (self.progress)(format!("ticket {id} links to {issue_url}"));
        }
        Ok(wrote)
    }
}

/// `group/project#12`, from the issue's URL.
fn reference(issue: &Issue) -> String {
    issue
        .web_url
        .split_once("://")
        .and_then(|(_, rest)| rest.split_once('/'))
        .and_then(|(_, path)| path.split_once("/-/issues/"))
        .map_or_else(
            || format!("#{}", issue.iid),
            |(project, _)| format!("{project}#{}", issue.iid),
        )
}

/// An RFC 3339 time: Freshdesk's `2015-08-24T11:59:05Z`, GitLab's
/// `2016-10-30T14:54:28.954-04:00` (GitLab answers in the instance's zone).
fn timestamp(text: &str) -> Option<std::time::SystemTime> {
    let text = text.trim();
    if let Some(utc) = text.strip_suffix('Z').or_else(|| text.strip_suffix('z')) {
        return humantime::parse_rfc3339_weak(utc).ok();
    }
    // `±HH:MM` at the end.
    let cut = text.len().checked_sub(6)?;
    let (local, offset) = (text.get(..cut)?, text.get(cut..)?);
    let sign = match offset.as_bytes().first()? {
        b'+' => 1i64,
        b'-' => -1,
        _ => return humantime::parse_rfc3339_weak(text).ok(),
    };
    let hours: u64 = offset.get(1..3)?.parse().ok()?;
    let minutes: u64 = offset.get(4..6)?.parse().ok()?;
    let shift = std::time::Duration::from_secs(hours * 3600 + minutes * 60);
    let local = humantime::parse_rfc3339_weak(local).ok()?;
    // Local time = UTC + offset.
    if sign > 0 {
        local.checked_sub(shift)
    } else {
        local.checked_add(shift)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_from_both_services_compare() {
        let freshdesk = timestamp("2015-08-24T11:59:05Z").unwrap();
        let gitlab = timestamp("2015-08-24T11:59:05.081Z").unwrap();
        assert!(freshdesk < gitlab);
        assert!(timestamp("yesterday").is_none());
        // 07:59:06 at -04:00 is 11:59:06 UTC.
        let zoned = timestamp("2015-08-24T07:59:06.000-04:00").unwrap();
        assert!(zoned > freshdesk && zoned < timestamp("2015-08-24T11:59:07Z").unwrap());
        let east = timestamp("2015-08-24T13:59:04+02:00").unwrap();
        assert!(east < freshdesk);
    }

    #[test]
    fn actions_render_as_in_the_spec() {
        assert_eq!(
            serde_json::to_value(EscalationAction::WouldCreate).unwrap(),
            "would-create"
        );
        assert_eq!(EscalationAction::Synced.as_str(), "synced");
    }
}
