//! Project uploads in the fake GitLab: `POST /projects/:id/uploads` with a
//! multipart `file` part, answered like GitLab (`url`, `full_path`,
//! `markdown`), refused with 413 above a settable size limit.

use http_body_util::Full;
use hyper::Response;
use hyper::body::Bytes;
use serde_json::json;

use super::{RecordedRequest, State, header, json_response, message};

/// A file uploaded to a project.
#[derive(Debug, Clone)]
pub struct FakeUpload {
    pub project_id: u64,
    pub file_name: String,
    pub content_type: String,
    /// The bytes as the fake received them (bodies are kept as text).
    pub content: String,
    /// `/uploads/<secret>/<file name>`.
    pub url: String,
}

#[derive(Debug, Default)]
pub struct Uploads {
    pub files: Vec<FakeUpload>,
    /// Larger files are refused with 413 (`None`: no limit).
    pub max_size: Option<usize>,
}

impl super::FakeGitLab {
    /// Every upload so far, in order.
    pub fn uploads(&self) -> Vec<FakeUpload> {
        self.lock().uploads.files.clone()
    }

    /// Refuse uploads larger than `bytes` with 413, as GitLab does above its
    /// maximum attachment size.
    pub fn set_max_upload_size(&self, bytes: usize) {
        self.lock().uploads.max_size = Some(bytes);
    }
}

pub fn create(s: &mut State, project_id: u64, request: &RecordedRequest) -> Response<Full<Bytes>> {
    let Some(part) = file_part(request) else {
        return json_response(400, &json!({ "error": "file is missing" }));
    };
    if s.uploads
        .max_size
        .is_some_and(|max| part.content.len() > max)
    {
        return message(413, "413 Request Entity Too Large");
    }
    let secret = format!("{:032x}", s.uploads.files.len() as u128 + 0x5eed_0000);
    let url = format!("/uploads/{secret}/{}", part.file_name);
    let alt = part
        .file_name
        .rsplit_once('.')
        .map_or(part.file_name.as_str(), |(stem, _)| stem)
        .to_owned();
    let image = part.content_type.starts_with("image/");
    let answer = json!({
        "id": s.uploads.files.len() + 1,
        "alt": alt,
        "url": url,
        "full_path": format!("/-/project/{project_id}/uploads/{secret}/{}", part.file_name),
        "markdown": format!("{}[{alt}]({url})", if image { "!" } else { "" }),
    });
    s.uploads.files.push(FakeUpload {
        project_id,
        file_name: part.file_name,
        content_type: part.content_type,
        content: part.content,
        url,
    });
    json_response(201, &answer)
}

struct Part {
    file_name: String,
    content_type: String,
    content: String,
}

/// The `file` part of a multipart body (parsed by hand: test code).
fn file_part(request: &RecordedRequest) -> Option<Part> {
    let content_type = header(request, "content-type")?;
    let boundary = content_type
        .split(';')
        .find_map(|p| p.trim().strip_prefix("boundary="))?
        .trim_matches('"');
    let delimiter = format!("--{boundary}");
    request.body.split(&delimiter).find_map(|part| {
        let part = part.strip_prefix("\r\n")?;
        let (head, content) = part.split_once("\r\n\r\n")?;
        let disposition = head
            .lines()
            .find(|l| l.to_ascii_lowercase().starts_with("content-disposition:"))?;
        if !disposition.contains("name=\"file\"") {
            return None;
        }
        let file_name = disposition
            .split_once("filename=\"")?
            .1
            .split_once('"')?
            .0
            .to_owned();
        let content_type = head
            .lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case("content-type")
                    .then(|| v.trim().to_owned())
            })
            .unwrap_or_else(|| "application/octet-stream".to_owned());
        Some(Part {
            file_name,
            content_type,
            content: content.strip_suffix("\r\n").unwrap_or(content).to_owned(),
        })
    })
}
