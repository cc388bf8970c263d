//! The fake GitLab's merge-request side: merge requests and their commits,
//! discussions (threads, resolvable, resolved by us or by "a person"),
//! repository files per project and branch, project lookup, and labels.
//!
//! Answers use the real shapes of `tests/fixtures/gitlab/merge_request.json`,
//! `discussion.json` and `project.json`. Paths and refs must arrive encoded
//! as GitLab wants them (a file path is one `%2F`-encoded segment), or the
//! route does not match, as on a real GitLab.

use std::collections::HashMap;

use http_body_util::Full;
use hyper::Response;
use hyper::body::Bytes;
use serde_json::{Value, json};

use super::{
    FakeGitLab, FakeProject, PROJECT_ID, RecordedRequest, State, decode, json_response, message,
    paginate, template,
};

/// The user rp-devops's token belongs to, as shown on its notes.
pub const BOT_USERNAME: &str = "rp-devops-bot";
/// That user's id (what `GET /user` answers for the fake's token).
pub const BOT_USER_ID: u64 = 4242;

/// A user's id: the bot's, or a stable one per other username.
pub fn user_id(username: &str) -> u64 {
    if username == BOT_USERNAME {
        return BOT_USER_ID;
    }
    1000 + username
        .bytes()
        .fold(0u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b)))
        % 1000
}

/// `GET /user` for the fake's token: the shape of a note's author, which is
/// what GitLab's `/user` answer starts with.
pub fn bot_user_json() -> Value {
    let discussions = template("discussion.json");
    let mut v = discussions[6]["notes"][0]["author"].clone();
    v["id"] = json!(BOT_USER_ID);
    v["username"] = json!(BOT_USERNAME);
    v["name"] = json!("rp-devops bot");
    v
}

#[derive(Debug, Clone, Default)]
pub struct MrStore {
    pub mrs: Vec<FakeMr>,
    /// (project id, branch, file path) → content.
    pub files: HashMap<(u64, String, String), String>,
    /// Labels per project id.
    pub labels: HashMap<u64, Vec<String>>,
    next_note: u64,
    next_discussion: u64,
}

#[derive(Debug, Clone)]
pub struct FakeMr {
    pub project_id: u64,
    pub iid: u64,
    pub id: u64,
    pub title: String,
    pub description: String,
    /// `opened`, `merged`, `closed`.
    pub state: String,
    pub draft: bool,
    pub source_project_id: u64,
    pub source_branch: String,
    pub target_branch: String,
    pub sha: String,
    pub merge_commit_sha: Option<String>,
    /// (sha, message), oldest first.
    pub commits: Vec<(String, String)>,
    pub discussions: Vec<FakeDiscussion>,
}

#[derive(Debug, Clone)]
pub struct FakeDiscussion {
    pub id: String,
    pub notes: Vec<FakeMrNote>,
}

impl FakeDiscussion {
    pub fn resolvable(&self) -> bool {
        self.notes.iter().any(|n| n.resolvable)
    }

    pub fn resolved(&self) -> bool {
        self.resolvable() && self.notes.iter().all(|n| !n.resolvable || n.resolved)
    }
}

#[derive(Debug, Clone)]
pub struct FakeMrNote {
    pub id: u64,
    pub body: String,
    pub author: String,
    pub resolvable: bool,
    pub resolved: bool,
}

/// A merge request to add with [`FakeGitLab::add_mr`].
#[derive(Debug, Clone)]
pub struct NewMr {
    pub title: String,
    pub description: String,
    pub state: String,
    pub draft: bool,
    pub source_project_id: u64,
    pub source_branch: String,
    pub target_branch: String,
    pub commits: Vec<String>,
    pub merge_commit_sha: Option<String>,
}

impl Default for NewMr {
    fn default() -> Self {
        Self {
            title: "Some change".to_owned(),
            description: String::new(),
            state: "opened".to_owned(),
            draft: false,
            source_project_id: PROJECT_ID,
            source_branch: "feature".to_owned(),
            target_branch: "main".to_owned(),
            commits: vec!["Some change".to_owned()],
            merge_commit_sha: None,
        }
    }
}

/// A fake 40-hex commit id derived from a number.
pub fn sha_of(n: u64) -> String {
    format!("{n:040x}")
}

impl FakeGitLab {
    /// Add a merge request to the default project; its IID.
    pub fn add_mr(&self, mr: NewMr) -> u64 {
        let mut s = self.lock();
        let iid =
            s.mr.mrs
                .iter()
                .filter(|m| m.project_id == PROJECT_ID)
                .count() as u64
                + 1;
        let base = 0xc0_0000 + iid * 100;
        let commits: Vec<(String, String)> = mr
            .commits
            .iter()
            .enumerate()
            .map(|(i, m)| (sha_of(base + i as u64), m.clone()))
            .collect();
        let sha = commits.last().map_or_else(|| sha_of(base), |c| c.0.clone());
        s.mr.mrs.push(FakeMr {
            project_id: PROJECT_ID,
            iid,
            id: 20_000 + iid,
            title: mr.title,
            description: mr.description,
            state: mr.state,
            draft: mr.draft,
            source_project_id: mr.source_project_id,
            source_branch: mr.source_branch,
            target_branch: mr.target_branch,
            sha,
            merge_commit_sha: mr.merge_commit_sha,
            commits,
            discussions: Vec::new(),
        });
        iid
    }

    /// Change a merge request (state, draft, target branch...).
    pub fn edit_mr(&self, iid: u64, edit: impl FnOnce(&mut FakeMr)) {
        let mut s = self.lock();
        let mr =
            s.mr.mrs
                .iter_mut()
                .find(|m| m.project_id == PROJECT_ID && m.iid == iid)
                .expect("no such MR");
        edit(mr);
    }

    pub fn mr(&self, iid: u64) -> FakeMr {
        self.lock()
            .mr
            .mrs
            .iter()
            .find(|m| m.project_id == PROJECT_ID && m.iid == iid)
            .cloned()
            .expect("no such MR")
    }

    /// Put a file on a branch of a project (replacing what was there).
    pub fn put_file(&self, project_id: u64, branch: &str, path: &str, content: &str) {
        self.lock().mr.files.insert(
            (project_id, branch.to_owned(), path.to_owned()),
            content.to_owned(),
        );
    }

    pub fn remove_file(&self, project_id: u64, branch: &str, path: &str) {
        self.lock()
            .mr
            .files
            .remove(&(project_id, branch.to_owned(), path.to_owned()));
    }

    /// Make labels exist in a project.
    pub fn add_labels(&self, project_id: u64, labels: &[&str]) {
        let mut s = self.lock();
        let known = s.mr.labels.entry(project_id).or_default();
        known.extend(labels.iter().map(|l| l.to_string()));
    }

    /// A person resolves (or reopens) a thread in the web UI.
    pub fn person_resolves(&self, iid: u64, discussion: &str, resolved: bool) {
        self.edit_mr(iid, |mr| {
            let d = mr
                .discussions
                .iter_mut()
                .find(|d| d.id == discussion)
                .expect("no such discussion");
            for n in d.notes.iter_mut().filter(|n| n.resolvable) {
                n.resolved = resolved;
            }
        });
    }

    /// A person replies in an existing thread.
    pub fn person_replies(&self, iid: u64, discussion: &str, body: &str) {
        let mut s = self.lock();
        let (_, note) = s.mr.new_ids();
        let mr =
            s.mr.mrs
                .iter_mut()
                .find(|m| m.project_id == PROJECT_ID && m.iid == iid)
                .expect("no such MR");
        let d = mr
            .discussions
            .iter_mut()
            .find(|d| d.id == discussion)
            .expect("no such discussion");
        let resolvable = d.resolvable();
        let resolved = d.resolved();
        d.notes.push(FakeMrNote {
            id: note,
            body: body.to_owned(),
            author: "a.person".to_owned(),
            resolvable,
            resolved,
        });
    }

    /// A person starts a thread (or comments) on an MR.
    pub fn person_comments(&self, iid: u64, body: &str, resolvable: bool) -> String {
        let mut s = self.lock();
        let (id, note) = s.mr.new_ids();
        let mr =
            s.mr.mrs
                .iter_mut()
                .find(|m| m.project_id == PROJECT_ID && m.iid == iid)
                .expect("no such MR");
        mr.discussions.push(FakeDiscussion {
            id: id.clone(),
            notes: vec![FakeMrNote {
                id: note,
                body: body.to_owned(),
                author: "a.person".to_owned(),
                resolvable,
                resolved: false,
            }],
        });
        id
    }
}

impl MrStore {
    fn new_ids(&mut self) -> (String, u64) {
        self.next_discussion += 1;
        self.next_note += 1;
        (
            format!("{:040x}", 0xd15c_0000 + self.next_discussion),
            700_000 + self.next_note,
        )
    }
}

fn project_json(s: &State, project: &FakeProject) -> Value {
    let mut v = template("project.json");
    let name = project.path.rsplit('/').next().unwrap_or_default();
    v["id"] = json!(project.id);
    v["path_with_namespace"] = json!(project.path);
    v["path"] = json!(name);
    v["name"] = json!(name);
    v["web_url"] = json!(format!("{}/{}", s.base_url, project.path));
    v
}

fn mr_json(s: &State, mr: &FakeMr) -> Value {
    let mut v = template("merge_request.json");
    let path = s
        .project(mr.project_id)
        .map_or(String::new(), |p| p.path.clone());
    v["id"] = json!(mr.id);
    v["iid"] = json!(mr.iid);
    v["project_id"] = json!(mr.project_id);
    v["target_project_id"] = json!(mr.project_id);
    v["source_project_id"] = json!(mr.source_project_id);
    v["title"] = json!(mr.title);
    v["description"] = json!(mr.description);
    v["state"] = json!(mr.state);
    v["draft"] = json!(mr.draft);
    v["work_in_progress"] = json!(mr.draft);
    v["source_branch"] = json!(mr.source_branch);
    v["target_branch"] = json!(mr.target_branch);
    v["sha"] = json!(mr.sha);
    v["merge_commit_sha"] = json!(mr.merge_commit_sha);
    v["reference"] = json!(format!("!{}", mr.iid));
    v["references"] = json!({
        "short": format!("!{}", mr.iid),
        "relative": format!("!{}", mr.iid),
        "full": format!("{path}!{}", mr.iid),
    });
    v["web_url"] = json!(format!("{}/{path}/-/merge_requests/{}", s.base_url, mr.iid));
    if mr.state != "merged" {
        v["merged_at"] = Value::Null;
    }
    v
}

fn note_json(mr: &FakeMr, note: &FakeMrNote) -> Value {
    let discussions = template("discussion.json");
    let mut v = discussions[6]["notes"][0].clone();
    v["id"] = json!(note.id);
    v["body"] = json!(note.body);
    v["noteable_id"] = json!(mr.id);
    v["noteable_iid"] = json!(mr.iid);
    v["author"]["id"] = json!(user_id(&note.author));
    v["author"]["username"] = json!(note.author);
    v["author"]["name"] = json!(note.author);
    v["resolvable"] = json!(note.resolvable);
    if note.resolvable {
        v["resolved"] = json!(note.resolved);
        if !note.resolved {
            v["resolved_by"] = Value::Null;
            v["resolved_at"] = Value::Null;
        }
    } else {
        for key in ["resolved", "resolved_by", "resolved_at"] {
            if let Some(map) = v.as_object_mut() {
                map.remove(key);
            }
        }
        v["type"] = Value::Null;
    }
    v
}

fn discussion_json(mr: &FakeMr, d: &FakeDiscussion) -> Value {
    json!({
        "id": d.id,
        "individual_note": !d.resolvable(),
        "notes": d.notes.iter().map(|n| note_json(mr, n)).collect::<Vec<_>>(),
    })
}

fn find_mr_index(s: &State, project_id: u64, iid: &str) -> Option<usize> {
    let iid: u64 = iid.parse().ok()?;
    s.mr.mrs
        .iter()
        .position(|m| m.project_id == project_id && m.iid == iid)
}

/// Routes under `/projects/:id/` for this area; `None` when none matches.
pub fn route(
    s: &mut State,
    project: &FakeProject,
    request: &RecordedRequest,
    rest: &[&str],
    body: &Value,
    params: &HashMap<String, String>,
) -> Option<Response<Full<Bytes>>> {
    let pid = project.id;
    let not_found = || message(404, "404 Merge Request Not Found");
    Some(match (request.method.as_str(), rest) {
        ("GET", []) => json_response(200, &project_json(s, project)),
        ("GET", ["labels", name]) => {
            let name = decode(name);
            let known = s.mr.labels.get(&pid).cloned().unwrap_or_default();
            match known.iter().position(|l| l.eq_ignore_ascii_case(&name)) {
                Some(i) => json_response(
                    200,
                    &json!({ "id": 9000 + i, "name": known[i], "color": "#428BCA" }),
                ),
                None => message(404, "404 Label Not Found"),
            }
        }
        ("GET", ["repository", "files", path, "raw"]) => {
            let path = decode(path);
            let Some(reference) = params.get("ref") else {
                return Some(json_response(400, &json!({ "error": "ref is missing" })));
            };
            match s.mr.files.get(&(pid, reference.clone(), path)) {
                Some(content) => Response::builder()
                    .status(200)
                    .header("content-type", "text/plain; charset=utf-8")
                    .body(Full::new(Bytes::from(content.clone())))
                    .expect("response"),
                None => message(404, "404 File Not Found"),
            }
        }
        ("GET", ["repository", "commits", sha, "merge_requests"]) => {
            let sha = decode(sha);
            let items =
                s.mr.mrs
                    .iter()
                    .filter(|m| m.project_id == pid)
                    .filter(|m| {
                        m.merge_commit_sha.as_deref() == Some(sha.as_str())
                            || m.commits.iter().any(|(c, _)| *c == sha)
                    })
                    .map(|m| mr_json(s, m))
                    .collect();
            paginate(s, request, params, items)
        }
        ("GET", ["merge_requests", iid]) => match find_mr_index(s, pid, iid) {
            Some(i) => json_response(200, &mr_json(s, &s.mr.mrs[i])),
            None => not_found(),
        },
        ("GET", ["merge_requests", iid, "commits"]) => match find_mr_index(s, pid, iid) {
            Some(i) => {
                let mr = &s.mr.mrs[i];
                let items = mr
                    .commits
                    .iter()
                    .rev()
                    .map(|(sha, message)| {
                        json!({
                            "id": sha,
                            "short_id": &sha[..8],
                            "title": message.lines().next().unwrap_or_default(),
                            "message": message,
                            "author_name": "Dev",
                            "created_at": "2026-01-01T00:00:00.000Z",
                            "parent_ids": [],
                            "web_url": format!("{}/x/-/commit/{sha}", s.base_url),
                        })
                    })
                    .collect();
                paginate(s, request, params, items)
            }
            None => not_found(),
        },
        ("GET", ["merge_requests", iid, "discussions"]) => match find_mr_index(s, pid, iid) {
            Some(i) => {
                let mr = &s.mr.mrs[i];
                let items = mr
                    .discussions
                    .iter()
                    .map(|d| discussion_json(mr, d))
                    .collect();
                paginate(s, request, params, items)
            }
            None => not_found(),
        },
        ("POST", ["merge_requests", iid, "discussions"]) => {
            let Some(text) = body.get("body").and_then(Value::as_str) else {
                return Some(json_response(400, &json!({ "error": "body is missing" })));
            };
            let Some(i) = find_mr_index(s, pid, iid) else {
                return Some(not_found());
            };
            let (id, note) = s.mr.new_ids();
            let discussion = FakeDiscussion {
                id,
                notes: vec![FakeMrNote {
                    id: note,
                    body: text.to_owned(),
                    author: BOT_USERNAME.to_owned(),
                    resolvable: true,
                    resolved: false,
                }],
            };
            let mr = &mut s.mr.mrs[i];
            mr.discussions.push(discussion.clone());
            json_response(201, &discussion_json(mr, &discussion))
        }
        ("POST", ["merge_requests", iid, "discussions", id, "notes"]) => {
            let Some(text) = body.get("body").and_then(Value::as_str) else {
                return Some(json_response(400, &json!({ "error": "body is missing" })));
            };
            let Some(i) = find_mr_index(s, pid, iid) else {
                return Some(not_found());
            };
            let (_, note_id) = s.mr.new_ids();
            let mr = &mut s.mr.mrs[i];
            let Some(d) = mr.discussions.iter_mut().find(|d| d.id == *id) else {
                return Some(message(404, "404 Discussion Not Found"));
            };
            let resolvable = d.resolvable();
            let note = FakeMrNote {
                id: note_id,
                body: text.to_owned(),
                author: BOT_USERNAME.to_owned(),
                resolvable,
                resolved: resolvable && d.resolved(),
            };
            d.notes.push(note.clone());
            let mr = mr.clone();
            json_response(201, &note_json(&mr, &note))
        }
        ("PUT", ["merge_requests", iid, "discussions", id]) => {
            let resolved = params
                .get("resolved")
                .map(|r| r == "true")
                .or_else(|| body.get("resolved").and_then(Value::as_bool));
            let Some(resolved) = resolved else {
                return Some(json_response(
                    400,
                    &json!({ "error": "resolved is missing" }),
                ));
            };
            let Some(i) = find_mr_index(s, pid, iid) else {
                return Some(not_found());
            };
            let mr = &mut s.mr.mrs[i];
            let Some(d) = mr.discussions.iter_mut().find(|d| d.id == *id) else {
                return Some(message(404, "404 Discussion Not Found"));
            };
            for n in d.notes.iter_mut().filter(|n| n.resolvable) {
                n.resolved = resolved;
            }
            let d = d.clone();
            let mr = mr.clone();
            json_response(200, &discussion_json(&mr, &d))
        }
        _ => return None,
    })
}
