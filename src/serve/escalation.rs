//! `POST /api/v1/escalations/{ticket_id}`: the endpoint behind the
//! "Escalate to GitLab" button of `examples/freshdesk-escalate.user.js`
//! (SPEC §8, §10). The second door to `ops::escalate`.
//!
//! - Bearer token from the variable named by `escalation_endpoint.token_env`,
//!   compared in constant time; 401 otherwise, before anything is read.
//! - CORS for `allowed_origin` only: the preflight (`OPTIONS`) is answered
//!   for that origin, and answers to it carry `Access-Control-Allow-Origin`.
//!   Other origins get no CORS headers (a browser then hides the answer);
//!   the token still decides (Tampermonkey's own requests carry no page
//!   origin).
//! - Numeric ticket ids only (404 otherwise). One escalation per ticket at
//!   a time: a second click while the first runs waits for it and then finds
//!   the issue, so the same ticket twice at once makes one issue.
//! - The work runs on the blocking pool; the answer is 201 with the new
//!   issue, 200 when it existed (with `--sync` semantics: newer conversations
//!   are copied), a JSON error otherwise: 404 for a ticket Freshdesk does not
//!   have, 502 when Freshdesk or GitLab failed, 504 when the work outlasts
//!   [`ANSWER_TIMEOUT`] (it goes on; clicking again shows the issue).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Result;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use md5::{Digest, Md5};
use subtle::ConstantTimeEq;

use crate::config::{EscalationEndpointConfig, FreshdeskConfig};
use crate::error::UsageError;
use crate::freshdesk::{Freshdesk, FreshdeskError};
use crate::gitlab::GitLab;
use crate::ops::escalate::{EscalateRequest, EscalationAction, escalate};
use crate::output::Printer;
use crate::settings::{Secret, Settings};

pub const ROUTE: &str = "/api/v1/escalations/{ticket_id}";

/// How long a click waits for its answer.
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(170);

/// The route, when `escalation_endpoint:` is configured.
pub fn feature(setup: &super::Setup<'_>) -> Result<Option<super::Feature>> {
    let Some(config) = &setup.settings.config.escalation_endpoint else {
        return Ok(None);
    };
    let endpoint = EscalationEndpoint::new(config, setup.settings, setup.log.clone())?;
    let description = format!("POST {ROUTE} ({})", endpoint.describe());
    Ok(Some(super::Feature {
        router: Arc::new(endpoint).routes(),
        description,
    }))
}

pub struct EscalationEndpoint {
    token: Secret,
    allowed_origin: Option<String>,
    gitlab: GitLab,
    freshdesk: Arc<Freshdesk>,
    freshdesk_config: FreshdeskConfig,
    project: String,
    /// One lock per ticket being escalated.
    busy: Mutex<HashMap<u64, Arc<tokio::sync::Mutex<()>>>>,
    log: Printer,
}

impl EscalationEndpoint {
    /// Check the sections and the environment and build both clients once.
    pub fn new(
        config: &EscalationEndpointConfig,
        settings: &Settings,
        log: Printer,
    ) -> Result<Self> {
        let token = settings.env.secret(&config.token_env).ok_or_else(|| {
            UsageError::new(format!(
                "the escalation endpoint needs a token, but {} is not set",
                config.token_env
            ))
            .with_hint(format!(
                "set {} in the service environment; escalation_endpoint.token_env names the variable, \
                 and agents enter the same token in the userscript",
                config.token_env
            ))
        })?;
        let freshdesk_config = settings.config.freshdesk.clone().ok_or_else(|| {
            UsageError::new("escalation_endpoint: needs the freshdesk: section too")
        })?;
        let allowed_origin = config
            .allowed_origin
            .as_deref()
            .map(|o| o.trim().trim_end_matches('/').to_owned())
            .filter(|o| !o.is_empty());
        if let Some(origin) = &allowed_origin {
            let valid = crate::http::origin(origin) == Some(origin.as_str())
                && (origin.starts_with("https://") || origin.starts_with("http://"));
            if !valid {
                return Err(UsageError::new(format!(
                    "escalation_endpoint.allowed_origin {origin:?} is not an origin like https://acme.freshdesk.com"
                ))
                .into());
            }
        }
        if settings.gitlab.url.is_none() {
            return Err(UsageError::new(
                "the escalation endpoint needs a GitLab URL: set gitlab.url or RP_GITLAB_URL",
            )
            .into());
        }
        Ok(Self {
            token,
            allowed_origin,
            gitlab: settings.gitlab_client(&log)?,
            freshdesk: Arc::new(settings.freshdesk_client(&log)?),
            freshdesk_config,
            project: settings.escalation_project()?,
            busy: Mutex::new(HashMap::new()),
            log,
        })
    }

    /// For the start-up message.
    pub fn describe(&self) -> String {
        match &self.allowed_origin {
            Some(origin) => format!(
                "escalation endpoint into {}, CORS for {origin}",
                self.project
            ),
            None => format!("escalation endpoint into {}, no CORS origin", self.project),
        }
    }

    pub fn routes(self: Arc<Self>) -> Router {
        Router::new().route(
            ROUTE,
            post(escalate_ticket).options(preflight).with_state(self),
        )
    }

    fn authorize(&self, headers: &HeaderMap) -> bool {
        let Some(given) = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                let (scheme, token) = v.trim().split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
            })
        else {
            return false;
        };
        // Digests, so neither the token nor its length leaks through timing.
        let given = Md5::digest(given.as_bytes());
        let expected = Md5::digest(self.token.expose().as_bytes());
        bool::from(given.as_slice().ct_eq(expected.as_slice()))
    }

    /// The request's origin, if it is the allowed one.
    fn allowed<'a>(&self, headers: &'a HeaderMap) -> Option<&'a str> {
        let origin = headers.get(header::ORIGIN)?.to_str().ok()?;
        (Some(origin) == self.allowed_origin.as_deref()).then_some(origin)
    }

    fn lock_for(&self, ticket: u64) -> Arc<tokio::sync::Mutex<()>> {
        let mut busy = self.busy.lock().unwrap_or_else(|p| p.into_inner());
        // Forget tickets nobody holds any more.
        busy.retain(|_, lock| Arc::strong_count(lock) > 1);
        busy.entry(ticket).or_default().clone()
    }
}

/// A JSON answer, with CORS headers for the allowed origin.
fn answer(status: StatusCode, body: serde_json::Value, origin: Option<&str>) -> Response {
    let mut response = (status, axum::Json(body)).into_response();
    let headers = response.headers_mut();
    headers.insert(header::VARY, HeaderValue::from_static("Origin"));
    if let Some(origin) = origin.and_then(|o| HeaderValue::from_str(o).ok()) {
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    }
    if status == StatusCode::UNAUTHORIZED {
        headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
    response
}

fn error(status: StatusCode, message: impl Into<String>, origin: Option<&str>) -> Response {
    answer(
        status,
        serde_json::json!({ "error": message.into() }),
        origin,
    )
}

async fn preflight(
    State(endpoint): State<Arc<EscalationEndpoint>>,
    headers: HeaderMap,
) -> Response {
    let Some(origin) = endpoint.allowed(&headers) else {
        return error(StatusCode::FORBIDDEN, "origin not allowed", None);
    };
    let mut response = StatusCode::NO_CONTENT.into_response();
    let h = response.headers_mut();
    if let Ok(origin) = HeaderValue::from_str(origin) {
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    }
    h.insert(header::VARY, HeaderValue::from_static("Origin"));
    h.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("POST, OPTIONS"),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static("Authorization, Content-Type"),
    );
    h.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static("600"),
    );
    response
}

async fn escalate_ticket(
    State(endpoint): State<Arc<EscalationEndpoint>>,
    Path(ticket_id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let origin = endpoint.allowed(&headers);
    if !endpoint.authorize(&headers) {
        return error(
            StatusCode::UNAUTHORIZED,
            "missing or wrong token (Authorization: Bearer …)",
            origin,
        );
    }
    let ticket = match ticket_id.parse::<u64>() {
        Ok(id) if id > 0 && ticket_id.bytes().all(|b| b.is_ascii_digit()) => id,
        _ => {
            return error(
                StatusCode::NOT_FOUND,
                "not a ticket number: /api/v1/escalations/ takes the numeric ticket id",
                origin,
            );
        }
    };
    // A second click on the same ticket waits here, then finds the issue.
    let guard = endpoint.lock_for(ticket).lock_owned().await;
    let worker = endpoint.clone();
    let work = tokio::task::spawn_blocking(move || {
        // The lock goes with the work: should the answer time out, the
        // escalation still finishes before the next one for this ticket.
        let _guard = guard;
        let request = EscalateRequest::new(
            ticket,
            true,
            worker.project.clone(),
            &worker.freshdesk_config,
        );
        let log = worker.log.clone();
        escalate(&request, &worker.gitlab, &worker.freshdesk, &move |line| {
            log.detail(line)
        })
    });
    let outcome = match tokio::time::timeout(ANSWER_TIMEOUT, work).await {
        Err(_) => {
            endpoint.log.warn(format!(
                "escalation of ticket {ticket} still running after {}s; answered 504",
                ANSWER_TIMEOUT.as_secs()
            ));
            return error(
                StatusCode::GATEWAY_TIMEOUT,
                format!(
                    "ticket {ticket} is still being escalated; click again in a minute to see the issue"
                ),
                origin,
            );
        }
        Ok(Err(join)) => {
            endpoint
                .log
                .warn(format!("escalation of ticket {ticket} panicked: {join}"));
            return error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal error while escalating; see the rp-devops log",
                origin,
            );
        }
        Ok(Ok(outcome)) => outcome,
    };
    match outcome {
        Ok(escalation) => {
            let status = if escalation.action == EscalationAction::Created {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            };
            endpoint.log.info(format!(
                "escalation of ticket {ticket}: {} {} ({} notes added)",
                escalation.action.as_str(),
                escalation
                    .issue
                    .as_ref()
                    .map_or("-", |issue| issue.web_url.as_str()),
                escalation.notes_added
            ));
            answer(
                status,
                serde_json::json!({
                    "ticket": escalation.ticket,
                    "issue": escalation.issue,
                    "action": escalation.action,
                    "notes_added": escalation.notes_added,
                    "attachments": escalation.attachments,
                }),
                origin,
            )
        }
        Err(err) => {
            let (status, message) = failure(&err);
            endpoint.log.warn(format!(
                "escalation of ticket {ticket} failed ({}): {err:#}",
                status.as_u16()
            ));
            let mut body = serde_json::json!({ "error": message });
            if let Some(hint) = crate::error::hint(&err) {
                body["hint"] = hint.into();
            }
            answer(status, body, origin)
        }
    }
}

/// The status and message for a failed escalation: 404 for a ticket
/// Freshdesk does not have, 500 for our own configuration, 502 for the rest
/// (Freshdesk or GitLab failed or refused).
fn failure(err: &anyhow::Error) -> (StatusCode, String) {
    let message = format!("{err:#}");
    let missing_ticket = err.chain().any(|cause| {
        cause
            .downcast_ref::<FreshdeskError>()
            .is_some_and(|e| e.status == Some(404) && e.method == "GET")
    });
    if missing_ticket {
        return (StatusCode::NOT_FOUND, message);
    }
    if crate::error::exit_status(err) == crate::error::ExitStatus::Usage {
        return (StatusCode::INTERNAL_SERVER_ERROR, message);
    }
    (StatusCode::BAD_GATEWAY, message)
}
