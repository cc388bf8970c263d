//! `rp-devops escalate`: the real binary against the fake Freshdesk and the
//! fake GitLab (SPEC §8).

mod support;

use serde_json::Value;
use support::fake_freshdesk::{self, FakeFreshdesk, NewConversation};
use support::fake_gitlab::{self, FakeGitLab, FakeIssue, Fault};

/// The project escalations go to (not the default one, so the config's
/// `freshdesk.project` is what puts them there).
const PROJECT_ID: u64 = 900;
const PROJECT: &str = "support/escalations";

struct Setup {
    gitlab: FakeGitLab,
    fd: FakeFreshdesk,
    home: tempfile::TempDir,
}

impl Setup {
    fn new() -> Self {
        Self::with_limit("8KiB")
    }

    fn with_limit(max_attachment_size: &str) -> Self {
        let gitlab = FakeGitLab::start();
        gitlab.add_project(PROJECT_ID, PROJECT);
        let fd = FakeFreshdesk::start();
        let home = tempfile::tempdir().expect("tempdir");
        let config = format!(
            "gitlab:\n  project: restorepoint/product\nfreshdesk:\n  url: {}\n  \
             api_key_env: FD_KEY\n  project: {PROJECT}\n  labels: [freshdesk, support]\n  \
             tag: escalated\n  link_field: cf_gitlab_issue\n  max_attachment_size: {max_attachment_size}\n",
            fd.url
        );
        std::fs::write(home.path().join("rp-devops.yml"), config).expect("config");
        Self { gitlab, fd, home }
    }

    fn cmd(&self) -> assert_cmd::Command {
        let mut cmd = support::rp_devops(self.home.path());
        cmd.env("RP_GITLAB_URL", &self.gitlab.url)
            .env("RP_GITLAB_TOKEN", fake_gitlab::TOKEN)
            .env("FD_KEY", fake_freshdesk::API_KEY);
        cmd
    }

    /// `escalate ARGS --json`, which must succeed; its JSON.
    fn escalate(&self, args: &[&str]) -> Value {
        let out = self
            .cmd()
            .arg("escalate")
            .args(args)
            .arg("--json")
            .output()
            .expect("run");
        assert!(
            out.status.success(),
            "escalate {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("one JSON document on stdout")
    }

    fn issues(&self) -> Vec<FakeIssue> {
        self.gitlab
            .issues()
            .into_iter()
            .filter(|i| i.project_id == PROJECT_ID)
            .collect()
    }

    fn issue(&self) -> FakeIssue {
        let issues = self.issues();
        assert_eq!(issues.len(), 1, "exactly one issue: {issues:#?}");
        issues.into_iter().next().expect("one issue")
    }

    /// The ticket's conversations that are rp-devops's link-back notes.
    fn link_back_notes(&self, ticket: u64) -> usize {
        self.fd
            .ticket(ticket)
            .conversations
            .iter()
            .filter(|c| c.private && c.body.contains("Escalated to GitLab:"))
            .count()
    }
}

fn reply(body: &str) -> NewConversation {
    NewConversation {
        body: body.to_owned(),
        incoming: true,
        from_email: Some("ada@customer.example".to_owned()),
        created_at: Some("2015-08-25T09:00:00Z".to_owned()),
        ..Default::default()
    }
}

fn private_note(body: &str) -> NewConversation {
    NewConversation {
        body: body.to_owned(),
        private: true,
        created_at: Some("2015-08-25T10:00:00Z".to_owned()),
        ..Default::default()
    }
}

const DESCRIPTION: &str = r#"<div>Backups stop at night since <b>5.2</b>, see <a href="https://status.example.com/incident/7">the incident</a>.</div>
<ul><li>server: <code>backup-01</code></li><li>since: Monday</li></ul>
<table><tr><th>job</th><th>result</th></tr><tr><td>nightly</td><td>failed</td></tr></table>
<div><img src="https://acme.freshdesk.com/inline/attachment?token=abc" alt="error dialog"></div>
<div class="freshdesk_quote"><blockquote class="freshdesk_quote">On Monday, support wrote:<br>Please send the logs.</blockquote></div>"#;

/// Ticket 20: the description above, a log and a screenshot on the ticket,
/// a reply with an attachment, a private note, a public answer by an agent.
fn rich_ticket(s: &Setup) {
    s.fd.add_ticket(20, "Backups fail at night", DESCRIPTION);
    s.fd.edit_ticket(20, |t| {
        t.tags = vec!["vip".into(), "backup".into()];
        t.custom_fields.insert("category".into(), "Primary".into());
    });
    s.fd.add_ticket_attachment(
        20,
        "backup.log",
        "text/plain",
        b"02:00 start\n02:05 ERROR disk full\n",
    );
    s.fd.add_ticket_attachment(20, "dialog.png", "image/png", b"PNG-ish bytes for the test");
    let mut with_file = reply("<div>Here are the logs you asked for.</div>");
    with_file.attachments = vec![(
        "agent.log".into(),
        "text/plain".into(),
        b"agent crashed at 02:05\n".to_vec(),
    )];
    s.fd.add_conversation(20, with_file);
    s.fd.add_conversation(
        20,
        private_note("<div>Looks like ticket 17, same customer.</div>"),
    );
    s.fd.add_conversation(
        20,
        NewConversation {
            body: "<div>We are looking into it.</div>".into(),
            created_at: Some("2015-08-25T11:00:00Z".into()),
            ..Default::default()
        },
    );
}

#[test]
fn a_ticket_is_copied_field_by_field() {
    let s = Setup::new();
    rich_ticket(&s);
    let result = s.escalate(&["20"]);

    let issue = s.issue();
    let web_url = format!("{}/{PROJECT}/-/issues/{}", s.gitlab.url, issue.iid);
    assert_eq!(result["ticket"], 20);
    assert_eq!(result["action"], "created");
    assert_eq!(result["issue"]["iid"], issue.iid);
    assert_eq!(result["issue"]["web_url"], web_url);
    assert_eq!(result["notes_added"], 3);
    assert_eq!(result["attachments"], 3);

    // The issue.
    assert_eq!(issue.title, "[Freshdesk #20] Backups fail at night");
    assert_eq!(issue.labels, ["freshdesk", "support"]);
    let d = &issue.description;
    assert_eq!(
        d.lines().next(),
        Some("<!-- rp-devops:freshdesk ticket=20 -->"),
        "{d}"
    );
    for expected in [
        &format!("[#20]({}/a/tickets/20)", s.fd.url),
        "requester: Ada Requester \\<ada@customer.example\\>",
        "status: Open",
        "priority: High",
        "Backups stop at night since **5.2**, see [the incident](https://status.example.com/incident/7).",
        "- server: `backup-01`",
        "| nightly | failed |",
        "![error dialog](https://acme.freshdesk.com/inline/attachment?token=abc)",
        "> On Monday, support wrote:",
        "> Please send the logs.",
    ] {
        assert!(d.contains(expected), "description lacks {expected:?}:\n{d}");
    }

    // Every attachment uploaded once, with its bytes, and linked from where it belongs.
    let uploads = s.gitlab.uploads();
    let names: Vec<&str> = uploads.iter().map(|u| u.file_name.as_str()).collect();
    assert_eq!(names, ["backup.log", "dialog.png", "agent.log"]);
    assert!(uploads.iter().all(|u| u.project_id == PROJECT_ID));
    assert_eq!(uploads[0].content, "02:00 start\n02:05 ERROR disk full\n");
    assert_eq!(uploads[0].content_type, "text/plain");
    assert_eq!(uploads[2].content, "agent crashed at 02:05\n");
    assert!(
        d.contains(&format!("- [backup.log]({}) (", uploads[0].url)),
        "{d}"
    );
    assert!(
        d.contains(&format!("- ![dialog.png]({}) (", uploads[1].url)),
        "{d}"
    );

    // One note per conversation, in order, each with its marker.
    let conversations = s.fd.ticket(20).conversations;
    let notes = &issue.notes;
    assert_eq!(notes.len(), 3, "{notes:#?}");
    for (note, conversation) in notes.iter().zip(&conversations) {
        assert_eq!(
            note.body.lines().next().map(str::to_owned),
            Some(format!(
                "<!-- rp-devops:freshdesk-conversation id={} -->",
                conversation.id
            ))
        );
    }
    assert!(
        notes[0].body.contains("**Reply from** Ada Requester"),
        "{}",
        notes[0].body
    );
    assert!(notes[0].body.contains("Here are the logs you asked for."));
    assert!(
        notes[0]
            .body
            .contains(&format!("- [agent.log]({})", uploads[2].url))
    );
    assert!(notes[1].body.contains("Private note"), "{}", notes[1].body);
    assert!(
        notes[1]
            .body
            .contains("Looks like ticket 17, same customer.")
    );
    assert!(
        notes[2].body.contains("**Public reply by**"),
        "{}",
        notes[2].body
    );

    // The private conversation became an internal note, the others did not.
    let note_posts: Vec<Value> = s
        .gitlab
        .requests()
        .iter()
        .filter(|r| r.method == "POST" && r.path.ends_with("/notes"))
        .map(|r| serde_json::from_str(&r.body).expect("JSON note"))
        .collect();
    let internal: Vec<bool> = note_posts
        .iter()
        .map(|b| b.get("internal") == Some(&Value::Bool(true)))
        .collect();
    assert_eq!(internal, [false, true, false]);

    // The link back: a private note with the URL, the tag added to the
    // others, the custom field.
    let ticket = s.fd.ticket(20);
    let link_notes: Vec<_> = ticket
        .conversations
        .iter()
        .filter(|c| c.body.contains(&web_url))
        .collect();
    assert_eq!(link_notes.len(), 1);
    assert!(link_notes[0].private);
    assert_eq!(ticket.tags, ["vip", "backup", "escalated"]);
    assert_eq!(ticket.custom_fields["cf_gitlab_issue"], web_url.as_str());
    assert_eq!(ticket.custom_fields["category"], "Primary");
}

#[test]
fn escalating_twice_leaves_one_issue_and_writes_nothing_more() {
    let s = Setup::new();
    rich_ticket(&s);
    s.escalate(&["20"]);
    let gitlab_writes = s
        .gitlab
        .requests()
        .iter()
        .filter(|r| r.method != "GET")
        .count();
    let fd_writes = s.fd.writes();

    let again = s.escalate(&["20"]);
    assert_eq!(again["action"], "unchanged");
    assert_eq!(again["notes_added"], 0);
    assert_eq!(again["issue"]["iid"], s.issue().iid);
    assert_eq!(s.issue().notes.len(), 3);
    assert_eq!(
        s.gitlab
            .requests()
            .iter()
            .filter(|r| r.method != "GET")
            .count(),
        gitlab_writes,
        "the second run wrote to GitLab"
    );
    assert_eq!(
        s.fd.writes(),
        fd_writes,
        "the second run wrote to Freshdesk"
    );
    assert_eq!(s.link_back_notes(20), 1);

    // Human output names the issue.
    let out = s.cmd().args(["escalate", "20"]).output().expect("run");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.starts_with("unchanged"), "{stdout}");
    assert!(
        stdout.contains(&format!("/-/issues/{}", s.issue().iid)),
        "{stdout}"
    );
}

#[test]
fn sync_copies_exactly_the_new_conversations() {
    let s = Setup::new();
    rich_ticket(&s);
    s.escalate(&["20"]);
    s.fd.add_conversation(
        20,
        NewConversation {
            body: "<div>It failed again tonight.</div>".into(),
            incoming: true,
            ..Default::default()
        },
    );
    s.fd.add_conversation(
        20,
        NewConversation {
            body: "<div>Escalation engineer assigned.</div>".into(),
            private: true,
            ..Default::default()
        },
    );

    // Without --sync only what the issue should already have is added.
    let plain = s.escalate(&["20"]);
    assert_eq!(plain["action"], "unchanged");
    assert_eq!(s.issue().notes.len(), 3);

    let synced = s.escalate(&["20", "--sync"]);
    assert_eq!(synced["action"], "synced");
    assert_eq!(synced["notes_added"], 2);
    let notes = s.issue().notes;
    assert_eq!(notes.len(), 5);
    assert!(notes[3].body.contains("It failed again tonight."));
    assert!(notes[4].body.contains("Escalation engineer assigned."));
    // rp-devops's own link-back note, a conversation too, is never copied.
    assert!(
        notes
            .iter()
            .all(|n| !n.body.contains("Escalated to GitLab"))
    );

    let again = s.escalate(&["20", "--sync"]);
    assert_eq!(again["action"], "unchanged");
    assert_eq!(s.issue().notes.len(), 5);
}

#[test]
fn a_run_that_failed_after_creating_the_issue_is_finished_by_the_next() {
    let s = Setup::new();
    rich_ticket(&s);
    // The first note is refused: the issue exists, no notes, no link back.
    s.gitlab
        .push_route_fault("POST", "/notes", Fault::Status(400, None));
    let out = s.cmd().args(["escalate", "20"]).output().expect("run");
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("copying conversation"), "{stderr}");
    assert_eq!(s.issues().len(), 1);
    assert_eq!(s.link_back_notes(20), 0);

    let result = s.escalate(&["20"]);
    assert_eq!(result["action"], "synced");
    let issue = s.issue();
    let conversations = s.fd.ticket(20).conversations;
    // Every conversation exactly once.
    for c in conversations
        .iter()
        .filter(|c| !c.body.contains("Escalated to GitLab"))
    {
        let marker = format!("<!-- rp-devops:freshdesk-conversation id={} -->", c.id);
        let n = issue
            .notes
            .iter()
            .filter(|n| n.body.starts_with(&marker))
            .count();
        assert_eq!(n, 1, "conversation {} noted {n} times", c.id);
    }
    assert_eq!(issue.notes.len(), 3);
    assert_eq!(s.link_back_notes(20), 1);
    assert_eq!(s.fd.ticket(20).tags, ["vip", "backup", "escalated"]);
}

#[test]
fn lost_answers_are_checked_before_anything_is_sent_again() {
    let s = Setup::new();
    rich_ticket(&s);
    s.gitlab
        .push_route_fault("POST", "/issues", Fault::LostAnswer);
    s.gitlab
        .push_route_fault("POST", "/notes", Fault::LostAnswer);
    s.fd.push_route_fault("POST", "/notes", Fault::LostAnswer);
    let result = s.escalate(&["20"]);
    assert_eq!(result["action"], "created");
    let issue = s.issue();
    assert_eq!(issue.notes.len(), 3);
    assert_eq!(s.link_back_notes(20), 1);
}

#[test]
fn a_failed_link_back_is_finished_without_a_second_note() {
    let s = Setup::new();
    rich_ticket(&s);
    s.fd.push_route_fault("PUT", "/tickets/20", Fault::Status(400, None));
    let out = s.cmd().args(["escalate", "20"]).output().expect("run");
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(s.link_back_notes(20), 1);
    assert_eq!(s.fd.ticket(20).tags, ["vip", "backup"]);

    let result = s.escalate(&["20"]);
    assert_eq!(result["action"], "synced");
    assert_eq!(result["notes_added"], 0);
    assert_eq!(s.link_back_notes(20), 1);
    assert_eq!(s.fd.ticket(20).tags, ["vip", "backup", "escalated"]);
    assert_eq!(s.issues().len(), 1);
}

#[test]
fn the_issue_is_found_by_link_field_and_by_the_note_when_the_label_is_gone() {
    let s = Setup::new();
    rich_ticket(&s);
    s.escalate(&["20"]);
    // Someone removed the labels; the ticket still leads to the issue.
    let iid = s.issue().iid;
    s.gitlab
        .lock()
        .issues
        .iter_mut()
        .for_each(|i| i.labels.clear());
    assert_eq!(s.escalate(&["20"])["issue"]["iid"], iid);
    // And without the custom field, by rp-devops's note on the ticket.
    s.fd.edit_ticket(20, |t| {
        t.custom_fields
            .insert("cf_gitlab_issue".into(), Value::Null);
    });
    let result = s.escalate(&["20"]);
    assert_eq!(result["issue"]["iid"], iid);
    assert_eq!(s.issues().len(), 1);
}

#[test]
fn a_150_conversation_ticket_is_read_page_by_page() {
    let s = Setup::new();
    s.fd.add_ticket(31, "Chatty", "<p>start</p>");
    for n in 0..150 {
        s.fd.add_conversation(31, reply(&format!("<p>message {n}</p>")));
    }
    let result = s.escalate(&["31"]);
    assert_eq!(result["notes_added"], 150);
    let notes = s.issue().notes;
    assert_eq!(notes.len(), 150);
    assert!(notes[0].body.contains("message 0"));
    assert!(notes[149].body.contains("message 149"));
    // Two pages of 100, never the ten-only include=conversations.
    let pages: Vec<_> =
        s.fd.requests()
            .into_iter()
            .filter(|r| r.path.ends_with("/conversations"))
            .collect();
    assert_eq!(pages.len(), 2, "{pages:#?}");
    assert!(pages.iter().all(|r| r.query.contains("per_page=100")));
    assert!(
        s.fd.requests()
            .iter()
            .all(|r| !r.query.contains("include=conversations"))
    );
}

#[test]
fn a_wrong_api_key_is_a_clear_error_and_nothing_is_written_to_gitlab() {
    let s = Setup::new();
    rich_ticket(&s);
    let out = s
        .cmd()
        .env("FD_KEY", "wrong-key-9d8s7")
        .args(["escalate", "20"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("Freshdesk ticket 20"), "{stderr}");
    assert!(stderr.contains("401"), "{stderr}");
    assert!(stderr.contains("You have to be logged in"), "{stderr}");
    assert!(
        stderr.contains("hint: Freshdesk rejected the API key from FD_KEY"),
        "{stderr}"
    );
    assert!(!stderr.contains("wrong-key-9d8s7"), "{stderr}");
    assert!(out.stdout.is_empty());
    assert!(s.gitlab.requests().is_empty(), "GitLab was contacted");
    assert!(s.issues().is_empty());

    // A link_field the account does not have: said before anything is written.
    s.fd.edit_ticket(20, |t| {
        t.custom_fields.remove("cf_gitlab_issue");
    });
    let out = s.cmd().args(["escalate", "20"]).output().expect("run");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("no custom field \"cf_gitlab_issue\" (freshdesk.link_field)"),
        "{stderr}"
    );
    assert!(stderr.contains("hint: create it in Freshdesk"), "{stderr}");
    assert!(s.gitlab.requests().is_empty() && s.fd.writes() == 0);

    // No key at all: a configuration error naming the variable.
    let out = s
        .cmd()
        .env_remove("FD_KEY")
        .args(["escalate", "20"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("FD_KEY"));
}

#[test]
fn a_missing_ticket_names_it() {
    let s = Setup::new();
    let out = s.cmd().args(["escalate", "404"]).output().expect("run");
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("Freshdesk ticket 404"), "{stderr}");
    assert!(
        stderr.contains("There is no ticket with id 404"),
        "{stderr}"
    );
    assert!(s.gitlab.requests().is_empty());
}

#[test]
fn an_expired_attachment_url_is_fetched_again() {
    let s = Setup::new();
    rich_ticket(&s);
    // The URLs of the first ticket read are already expired by the time
    // they are used; one re-read gives fresh URLs for both.
    s.fd.expire_next_urls(2);
    let result = s.escalate(&["20"]);
    assert_eq!(result["action"], "created");
    let uploads = s.gitlab.uploads();
    assert_eq!(uploads[0].file_name, "backup.log");
    assert_eq!(uploads[0].content, "02:00 start\n02:05 ERROR disk full\n");
    assert_eq!(uploads[1].content, "PNG-ish bytes for the test");
    let downloads = s.fd.lock().downloads.clone();
    let statuses: Vec<u16> = downloads.iter().map(|(_, status)| *status).collect();
    assert_eq!(
        statuses.iter().filter(|&&st| st == 403).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|&&st| st == 200).count(),
        3,
        "{statuses:?}"
    );
    // Credentials never went to the attachment host.
    assert!(!statuses.contains(&400), "{statuses:?}");
}

#[test]
fn an_oversize_attachment_is_linked_and_said() {
    let s = Setup::with_limit("4KiB");
    s.fd.add_ticket(40, "Core dump", "<p>dump attached</p>");
    let big =
        s.fd.add_ticket_attachment(40, "core.dump", "application/octet-stream", &[b'x'; 10_000]);
    s.fd.add_ticket_attachment(40, "small.txt", "text/plain", b"fine");
    // Below the configured limit but above GitLab's own: GitLab's 413 says so.
    s.gitlab.set_max_upload_size(3000);
    let mut reply_with = reply("<p>another</p>");
    reply_with.attachments = vec![(
        "mid.bin".into(),
        "application/octet-stream".into(),
        vec![b'y'; 3500],
    )];
    s.fd.add_conversation(40, reply_with);

    let result = s.escalate(&["40"]);
    assert_eq!(result["attachments"], 3);
    let issue = s.issue();
    let d = &issue.description;
    assert!(
        d.contains(&format!(
            "- [core.dump]({}/helpdesk/attachments/{big}) (9.8 KiB): **not copied**, larger than GitLab's upload limit of 4.0 KiB; open it in Freshdesk",
            s.fd.url
        )),
        "{d}"
    );
    let note = &issue.notes[0].body;
    assert!(
        note.contains(&format!(
            "[mid.bin]({}/helpdesk/attachments/{}) (3.4 KiB): **not copied**, GitLab refused it as too large; open it in Freshdesk",
            s.fd.url,
            s.fd.ticket(40).conversations[0].attachments[0].id
        )),
        "{note}"
    );
    let names: Vec<String> = s
        .gitlab
        .uploads()
        .into_iter()
        .map(|u| u.file_name)
        .collect();
    assert_eq!(names, ["small.txt"]);
    // The big one was never downloaded (its size was announced).
    assert_eq!(s.fd.lock().downloads.len(), 2);
}

#[test]
fn ticket_text_cannot_forge_markers_or_quick_actions() {
    let s = Setup::new();
    s.fd.add_ticket(
        50,
        "Hostile",
        "<p>/close</p><p>&lt;!-- rp-devops:freshdesk ticket=51 --&gt;</p><!-- rp-devops:freshdesk ticket=51 -->",
    );
    s.fd.add_conversation(50, reply("<div>/label ~wontfix</div><div>&lt;!-- rp-devops:freshdesk-conversation id=1 --&gt;</div>"));
    s.escalate(&["50"]);
    let issue = s.issue();
    for text in std::iter::once(&issue.description).chain(issue.notes.iter().map(|n| &n.body)) {
        assert_eq!(text.matches("<!--").count(), 1, "{text}");
        assert!(
            text.lines()
                .next()
                .is_some_and(|l| l.starts_with("<!-- rp-devops:"))
        );
        assert!(
            text.lines()
                .all(|l| !l.trim_start().starts_with("/close")
                    && !l.trim_start().starts_with("/label")),
            "{text}"
        );
    }
    // The fake runs a note's `/close` as GitLab does: the issue is still open.
    assert_eq!(issue.state, "opened");
    // Ticket 51 is not mistaken for 50 by the fake marker in 50's text.
    s.fd.add_ticket(51, "Other", "<p>other</p>");
    let other = s.escalate(&["51"]);
    assert_eq!(other["action"], "created");
    assert_eq!(s.issues().len(), 2);
}

#[test]
fn dry_run_reads_and_writes_nothing() {
    let s = Setup::new();
    rich_ticket(&s);
    let out = s
        .cmd()
        .args(["escalate", "20", "--dry-run", "--json"])
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let result: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(result["action"], "would-create");
    assert_eq!(result["issue"], Value::Null);
    assert_eq!(result["notes_added"], 3);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("dry-run: would POST projects/support%2Fescalations/issues"),
        "{stderr}"
    );
    assert!(
        stderr.contains("dry-run: would POST freshdesk:/api/v2/tickets/20/notes"),
        "{stderr}"
    );
    assert!(
        stderr.contains("dry-run: would PUT freshdesk:/api/v2/tickets/20"),
        "{stderr}"
    );
    assert!(s.gitlab.requests().iter().all(|r| r.method == "GET"));
    assert_eq!(s.fd.writes(), 0);
    assert!(
        s.fd.lock().downloads.is_empty(),
        "a dry run downloads nothing"
    );

    // On an escalated ticket with new conversations: would-sync.
    s.escalate(&["20"]);
    s.fd.add_conversation(20, reply("<p>new</p>"));
    let fd_writes = s.fd.writes();
    let out = s
        .cmd()
        .args(["escalate", "20", "--sync", "--dry-run", "--json"])
        .output()
        .expect("run");
    let result: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(result["action"], "would-sync");
    assert_eq!(result["notes_added"], 1);
    assert_eq!(s.issue().notes.len(), 3);
    assert_eq!(s.fd.writes(), fd_writes);
}

#[test]
fn rate_limits_and_server_errors_are_retried() {
    let s = Setup::new();
    rich_ticket(&s);
    s.fd.push_route_fault("GET", "/tickets/20", Fault::Status(429, Some(1)));
    s.fd.push_route_fault("GET", "/conversations", Fault::Status(503, None));
    s.fd.push_route_fault("GET", "/conversations", Fault::Drop);
    let out = s
        .cmd()
        .args(["escalate", "20", "--json"])
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("429 Too Many Requests; retrying in 1.0s"),
        "{stderr}"
    );
    assert_eq!(s.issue().notes.len(), 3);
}

#[test]
fn two_runs_at_once_leave_one_open_issue() {
    let s = Setup::new();
    rich_ticket(&s);
    // Both runs' lookups answer late, so both find nothing and both create.
    for _ in 0..2 {
        s.gitlab.push_route_fault(
            "GET",
            "/issues",
            Fault::Slow(std::time::Duration::from_millis(500)),
        );
    }
    let runs: Vec<_> = (0..2)
        .map(|_| {
            let mut cmd = support::rp_devops_std(s.home.path());
            cmd.env("RP_GITLAB_URL", &s.gitlab.url)
                .env("RP_GITLAB_TOKEN", fake_gitlab::TOKEN)
                .env("FD_KEY", fake_freshdesk::API_KEY)
                .args(["escalate", "20", "--json"])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .expect("spawn")
        })
        .collect();
    let outs: Vec<_> = runs
        .into_iter()
        .map(|c| c.wait_with_output().expect("wait"))
        .collect();
    for out in &outs {
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let results: Vec<Value> = outs
        .iter()
        .map(|o| serde_json::from_slice(&o.stdout).expect("json"))
        .collect();
    assert_eq!(
        results[0]["issue"], results[1]["issue"],
        "both name the same issue"
    );
    let issues = s.issues();
    assert_eq!(issues.len(), 2, "both created one");
    let open: Vec<_> = issues.iter().filter(|i| i.state == "opened").collect();
    assert_eq!(open.len(), 1);
    assert_eq!(open[0].iid, 1, "the earlier issue stays");
    assert_eq!(open[0].notes.len(), 3);
    let closed = issues
        .iter()
        .find(|i| i.state == "closed")
        .expect("closed duplicate");
    assert!(
        closed
            .notes
            .iter()
            .any(|n| n.body.contains("Duplicate of #1"))
    );
    assert_eq!(s.link_back_notes(20), 1);
}

#[test]
fn json_result_shape() {
    let s = Setup::new();
    rich_ticket(&s);
    let mut result = s.escalate(&["20"]);
    result["issue"]["web_url"] = Value::from("[url]");
    insta::assert_json_snapshot!(result);
}

#[test]
fn help_text() {
    let s = Setup::new();
    let out = s.cmd().args(["escalate", "--help"]).output().expect("run");
    assert!(out.status.success());
    insta::assert_snapshot!(String::from_utf8_lossy(&out.stdout));
}
