//! The fake GitLab's releases, compare and commits routes, answered from a
//! real git repository: the test's bare remote, read with `git log` when a
//! request comes in, so release notes are checked against real history.
//!
//! Shapes follow GitLab's API documentation (`release.json`, `commit.json`
//! in `tests/fixtures/gitlab/`): compare lists its commits oldest first,
//! the commits API newest first and paginated; a second release for a tag
//! is a 409; `JOB-TOKEN` is accepted by the Releases API. Whether it may read
//! the repository's commits is a switch, because real GitLab versions differ
//! (most ignore the job token there, which for a private project reads as
//! "404 Project Not Found").
//!
//! The state lives here, keyed by the fake's URL, so that `fake_gitlab.rs`
//! only needs its dispatch line. Only projects given a repository with
//! [`FakeGitLab::serve_repository`] are answered here.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{LazyLock, Mutex, MutexGuard};

use http_body_util::Full;
use hyper::Response;
use hyper::body::Bytes;
use serde_json::{Value, json};

use super::{
    FakeGitLab, FakeProject, RecordedRequest, State, decode, header, json_response, message,
    paginate, query_params, template,
};

/// A project whose repository and releases this file serves.
struct Served {
    repository: PathBuf,
    /// Oldest first.
    releases: Vec<Value>,
    job_token_reads_commits: bool,
}

/// Per fake (by URL), per project id.
static SERVED: LazyLock<Mutex<HashMap<String, HashMap<u64, Served>>>> =
    LazyLock::new(Mutex::default);

fn served() -> MutexGuard<'static, HashMap<String, HashMap<u64, Served>>> {
    SERVED.lock().unwrap_or_else(|p| p.into_inner())
}

impl FakeGitLab {
    /// A release of `tag` as if made earlier (by a tag job), with no links.
    pub fn add_release(&self, project_id: u64, tag: &str) {
        let mut release = template("release.json");
        release["tag_name"] = json!(tag);
        release["name"] = json!(tag);
        release["assets"]["links"] = json!([]);
        if let Some(served) = served()
            .get_mut(&self.url)
            .and_then(|p| p.get_mut(&project_id))
        {
            served.releases.push(release);
        }
    }

    /// Answer `project_id`'s releases, compare and commits routes from the
    /// (bare) repository at `repository`, with no releases yet.
    pub fn serve_repository(&self, project_id: u64, repository: &Path) {
        served().entry(self.url.clone()).or_default().insert(
            project_id,
            Served {
                repository: repository.to_path_buf(),
                releases: Vec::new(),
                job_token_reads_commits: true,
            },
        );
    }

    /// The project's releases, oldest first, as GitLab answers them.
    pub fn releases(&self, project_id: u64) -> Vec<Value> {
        served()
            .get(&self.url)
            .and_then(|projects| projects.get(&project_id))
            .map(|p| p.releases.clone())
            .unwrap_or_default()
    }

    /// Answer the compare and commits routes as most GitLab versions do
    /// for `CI_JOB_TOKEN` on a private project: 404 Project Not Found.
    pub fn refuse_job_token_on_commits(&self, project_id: u64) {
        if let Some(p) = served()
            .get_mut(&self.url)
            .and_then(|projects| projects.get_mut(&project_id))
        {
            p.job_token_reads_commits = false;
        }
    }
}

/// The answer to a request for one of these routes, or `None` to let the
/// main router go on. Called after the token and the project were checked.
pub fn route(
    s: &State,
    project: &FakeProject,
    request: &RecordedRequest,
    rest: &[&str],
) -> Option<Response<Full<Bytes>>> {
    let mut all = served();
    let served = all.get_mut(&s.base_url)?.get_mut(&project.id)?;
    let job_token = header(request, "private-token").is_none();
    let params = query_params(&request.query);
    let web = format!("{}/{}", s.base_url, project.path);
    Some(match (request.method.as_str(), rest) {
        ("GET", ["releases"]) => {
            let newest_first = served.releases.iter().rev().cloned().collect();
            paginate(s, request, &params, newest_first)
        }
        ("GET", ["releases", tag]) => {
            let tag = decode(tag);
            match served
                .releases
                .iter()
                .find(|r| r["tag_name"] == tag.as_str())
            {
                Some(release) => json_response(200, release),
                None => message(404, "404 Not Found"),
            }
        }
        ("POST", ["releases"]) => create_release(served, &web, &request.body),
        ("GET", ["releases", tag, "assets", "links"]) => {
            let tag = decode(tag);
            match served
                .releases
                .iter()
                .find(|r| r["tag_name"] == tag.as_str())
            {
                Some(release) => json_response(200, &release["assets"]["links"]),
                None => message(404, "404 Not Found"),
            }
        }
        ("POST", ["releases", tag, "assets", "links"]) => {
            let tag = decode(tag);
            match served
                .releases
                .iter_mut()
                .find(|r| r["tag_name"] == tag.as_str())
            {
                Some(release) => add_link(release, request),
                None => message(404, "404 Not Found"),
            }
        }
        ("GET", ["repository", "compare"]) | ("GET", ["repository", "commits"])
            if job_token && !served.job_token_reads_commits =>
        {
            message(404, "404 Project Not Found")
        }
        ("GET", ["repository", "compare"]) => {
            let (Some(from), Some(to)) = (params.get("from"), params.get("to")) else {
                return Some(json_response(400, &json!({ "error": "from is missing" })));
            };
            let range = format!("{from}..{to}");
            match git_log(&served.repository, &["--reverse", &range], &web) {
                Some(commits) => json_response(
                    200,
                    &json!({
                        "commit": commits.last().cloned().unwrap_or(Value::Null),
                        "commits": commits,
                        "diffs": [],
                        "compare_timeout": false,
                        "compare_same_ref": from == to,
                        "web_url": format!("{web}/-/compare/{from}...{to}"),
                    }),
                ),
                None => message(404, "404 Not Found"),
            }
        }
        ("GET", ["repository", "commits"]) => {
            let reference = params.get("ref_name").cloned().unwrap_or("HEAD".to_owned());
            match git_log(&served.repository, &[&reference], &web) {
                Some(commits) => paginate(s, request, &params, commits),
                None => message(404, "404 Commit Not Found"),
            }
        }
        _ => return None,
    })
}

fn create_release(served: &mut Served, web: &str, body: &str) -> Response<Full<Bytes>> {
    let body: Value = serde_json::from_str(body).unwrap_or_default();
    let Some(tag) = body["tag_name"].as_str().filter(|t| !t.is_empty()) else {
        return json_response(400, &json!({ "error": "tag_name is missing" }));
    };
    if served.releases.iter().any(|r| r["tag_name"] == tag) {
        return message(409, "Release already exists");
    }
    let Some(commit) = git(
        &served.repository,
        &[
            "rev-parse",
            "--verify",
            "-q",
            &format!("refs/tags/{tag}^{{commit}}"),
        ],
    ) else {
        // Without `ref`, GitLab only releases an existing tag.
        return message(422, "Ref is not specified");
    };
    let mut release = template("release.json");
    let encoded = percent_encoding::utf8_percent_encode(tag, percent_encoding::NON_ALPHANUMERIC);
    release["tag_name"] = json!(tag);
    release["name"] = body.get("name").cloned().unwrap_or(json!(tag));
    release["description"] = body.get("description").cloned().unwrap_or(json!(""));
    release["commit"]["id"] = json!(commit.trim());
    release["tag_path"] = json!(format!("{web}/-/tags/{encoded}"));
    release["_links"]["self"] = json!(format!("{web}/-/releases/{encoded}"));
    release["_links"]["edit_url"] = json!(format!("{web}/-/releases/{encoded}/edit"));
    served.releases.push(release.clone());
    json_response(201, &release)
}

/// A release's asset link (form or JSON body: `name`, `url`,
/// `link_type`); a second link with the same name or URL is refused, as
/// GitLab does.
fn add_link(release: &mut Value, request: &RecordedRequest) -> Response<Full<Bytes>> {
    let fields: std::collections::HashMap<String, String> =
        if request.body.trim_start().starts_with('{') {
            serde_json::from_str::<Value>(&request.body)
                .ok()
                .and_then(|v| v.as_object().cloned())
                .map(|o| {
                    o.into_iter()
                        .filter_map(|(k, v)| v.as_str().map(|v| (k, v.to_owned())))
                        .collect()
                })
                .unwrap_or_default()
        } else {
            query_params(&request.body)
        };
    let (Some(name), Some(url)) = (fields.get("name"), fields.get("url")) else {
        return json_response(400, &json!({ "error": "name, url are missing" }));
    };
    if !release["assets"]["links"].is_array() {
        release["assets"]["links"] = json!([]);
    }
    let links = release["assets"]["links"].as_array_mut().expect("an array");
    if links
        .iter()
        .any(|l| l["name"] == name.as_str() || l["url"] == url.as_str())
    {
        return json_response(
            400,
            &json!({ "message": { "name": ["has already been taken"] } }),
        );
    }
    let link = json!({
        "id": 100 + links.len(),
        "name": name,
        "url": url,
        "direct_asset_url": url,
        "link_type": fields.get("link_type").map_or("other", String::as_str),
    });
    links.push(link.clone());
    json_response(201, &link)
}

/// `git ARGS` in `repository`, its stdout if it succeeded.
fn git(repository: &Path, args: &[&str]) -> Option<String> {
    let output = Command::new("git")
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .arg("-C")
        .arg(repository)
        .args(args)
        .output()
        .ok()?;
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).into_owned())
}

/// `git log ARGS` as GitLab commit objects (`commit.json`'s shape).
fn git_log(repository: &Path, args: &[&str], web: &str) -> Option<Vec<Value>> {
    let format = "--format=%H%x00%P%x00%an%x00%ae%x00%aI%x00%cn%x00%ce%x00%cI%x00%B%x1e";
    let mut full = vec!["log", format];
    full.extend_from_slice(args);
    full.push("--");
    let text = git(repository, &full)?;
    let commits = text
        .split('\u{1e}')
        .map(|record| record.trim_start_matches('\n'))
        .filter(|record| !record.is_empty())
        .filter_map(|record| {
            let fields: Vec<&str> = record.splitn(9, '\0').collect();
            let [id, parents, an, ae, ad, cn, ce, cd, message] = fields.as_slice() else {
                return None;
            };
            let mut commit = template("commit.json");
            commit["id"] = json!(id);
            commit["short_id"] = json!(&id[..8]);
            commit["parent_ids"] = json!(parents.split_whitespace().collect::<Vec<_>>());
            commit["title"] = json!(message.lines().next().unwrap_or_default());
            commit["message"] = json!(message);
            commit["author_name"] = json!(an);
            commit["author_email"] = json!(ae);
            commit["authored_date"] = json!(ad);
            commit["committer_name"] = json!(cn);
            commit["committer_email"] = json!(ce);
            commit["committed_date"] = json!(cd);
            commit["created_at"] = json!(cd);
            commit["web_url"] = json!(format!("{web}/-/commit/{id}"));
            Some(commit)
        })
        .collect();
    Some(commits)
}
