//! The fake GitLab's blame route:
//! `GET /projects/:id/repository/files/:file_path/blame?ref=…&range[start]=N&range[end]=M`,
//! answering GitLab's documented shape, a list of `{commit, lines}` ranges
//! covering the asked lines. The file path must arrive as one `%2F`-encoded
//! segment, as on a real GitLab.

use std::collections::HashMap;

use http_body_util::Full;
use hyper::Response;
use hyper::body::Bytes;
use serde_json::{Value, json};

use super::{FakeGitLab, FakeProject, RecordedRequest, State, decode, json_response, message};

/// Who last changed some consecutive lines of a file.
#[derive(Debug, Clone)]
pub struct FakeBlameRange {
    pub sha: String,
    pub author: String,
    /// `2026-11-20T09:30:00.000Z`.
    pub date: String,
    pub message: String,
    pub lines: usize,
}

#[derive(Debug, Clone, Default)]
pub struct BlameStore {
    /// (project id, ref, path) → the file's ranges, from line 1.
    files: HashMap<(u64, String, String), Vec<FakeBlameRange>>,
    /// (project id, path) → a status every blame of that file answers.
    failing: HashMap<(u64, String), u16>,
}

impl FakeGitLab {
    /// Make `path` exist on `branch` of a project, with these blame ranges.
    pub fn put_blame(
        &self,
        project_id: u64,
        branch: &str,
        path: &str,
        ranges: Vec<FakeBlameRange>,
    ) {
        self.lock()
            .blame
            .files
            .insert((project_id, branch.to_owned(), path.to_owned()), ranges);
    }

    /// Every blame of `path` answers `status` (404, 500…).
    pub fn fail_blame(&self, project_id: u64, path: &str, status: u16) {
        self.lock()
            .blame
            .failing
            .insert((project_id, path.to_owned()), status);
    }
}

/// Blame GETs recorded so far, as (file path, first line asked).
pub fn blame_requests(gitlab: &FakeGitLab) -> Vec<(String, String)> {
    gitlab
        .requests()
        .iter()
        .filter(|r| r.method == "GET" && r.path.ends_with("/blame"))
        .map(|r| {
            let segments: Vec<&str> = r.path.split('/').collect();
            let file = segments
                .iter()
                .rev()
                .nth(1)
                .map(|s| decode(s))
                .unwrap_or_default();
            let params = super::query_params(&r.query);
            (
                file,
                params.get("range[start]").cloned().unwrap_or_default(),
            )
        })
        .collect()
}

fn commit_json(range: &FakeBlameRange) -> Value {
    json!({
        "id": range.sha,
        "parent_ids": [format!("{:040x}", 1)],
        "message": range.message,
        "authored_date": range.date,
        "author_name": range.author,
        "author_email": format!("{}@example.com", range.author.to_lowercase().replace(' ', ".")),
        "committed_date": range.date,
        "committer_name": range.author,
        "committer_email": "ci@example.com",
    })
}

/// The blame route, or `None` for another route.
pub fn route(
    s: &State,
    project: &FakeProject,
    request: &RecordedRequest,
    rest: &[&str],
) -> Option<Response<Full<Bytes>>> {
    let ("GET", ["repository", "files", path, "blame"]) = (request.method.as_str(), rest) else {
        return None;
    };
    let path = decode(path);
    let params = super::query_params(&request.query);
    let Some(reference) = params.get("ref") else {
        return Some(json_response(400, &json!({ "error": "ref is missing" })));
    };
    if let Some(status) = s.blame.failing.get(&(project.id, path.clone())) {
        return Some(message(*status, &format!("{status} blame failed")));
    }
    let Some(ranges) = s
        .blame
        .files
        .get(&(project.id, reference.clone(), path.clone()))
    else {
        return Some(message(404, "404 File Not Found"));
    };
    let total: usize = ranges.iter().map(|r| r.lines).sum();
    let number = |key: &str, default: usize| -> Option<usize> {
        match params.get(key) {
            Some(v) => v.parse().ok(),
            None => Some(default),
        }
    };
    let (Some(start), Some(end)) = (number("range[start]", 1), number("range[end]", total)) else {
        return Some(json_response(400, &json!({ "error": "range is invalid" })));
    };
    if start < 1 || end < start || end > total {
        return Some(message(400, "400 Bad request - range[end] is out of range"));
    }
    let mut answer = Vec::new();
    let mut first = 1;
    for range in ranges {
        let last = first + range.lines - 1;
        let (from, to) = (first.max(start), last.min(end));
        if from <= to {
            let lines: Vec<String> = (from..=to).map(|n| format!("line {n} of {path}")).collect();
            answer.push(json!({ "commit": commit_json(range), "lines": lines }));
        }
        first = last + 1;
    }
    Some(json_response(200, &Value::Array(answer)))
}
